"""Pure TensorFlow aggregation kernels over stacked client values.

Every kernel takes a list of ``[K, n_t]`` float tensors (K clients, one matrix
per flattened model tensor) and returns a ``KernelOutput``. No TFF import here:
the kernels run in plain TF, eagerly or inside ``tf.function``, on any device.
One module per aggregator (the package ``residual``, ``coordinate_median``,
``trimmed_mean``, ``repeated_median``, ``foolsgold``, ``mean``, ``krum``,
``geometric_median``, ``centered_clipping``, ``bulyan``, ``nnm``), each with its
frozen config (``method_config.MethodConfig``); ``method_table`` is the one table of them.
"""

from tff_residual.kernels.clients import KernelOutput
from tff_residual.kernels.method_table import METHODS, build_kernel, resolve
from tff_residual.kernels.residual.reweighting import ResidualReweightingConfig
