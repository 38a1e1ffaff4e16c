"""Pure TensorFlow aggregation kernels over stacked client values.

Every kernel takes a list of ``[K, n_t]`` float tensors (K clients, one matrix
per flattened model tensor) and returns a ``KernelOutput``. No TFF import here:
the kernels run in plain TF, eagerly or inside ``tf.function``, on any device.
One module per aggregator (``residual_reweighting``, ``coordinate_median``,
``trimmed_mean``, ``repeated_median``, ``foolsgold``, ``mean``); ``registry``
maps method names to them.
"""

from tff_residual.kernels.clients import KernelOutput
from tff_residual.kernels.registry import METHODS, build_kernel
from tff_residual.kernels.residual_reweighting import ResidualReweightingConfig
