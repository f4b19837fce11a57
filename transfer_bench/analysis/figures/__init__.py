"""The paper figures, one module per figure kind, and ``common`` for what the kinds share.

``common`` holds the shared constants, statistics and drawing helpers and the figure registry;
``sparsity``, ``transfer_matrix``, ``optimizer_transfer``, ``mask_overlap``, ``layer_density`` and
``training_curves``, ``stability`` each draw one kind and register it with ``register_figure``. Importing this
package imports every kind module (in this order) so that ``FIGURE_KINDS`` is complete. The public
entry points (``plot``, ``make_figure``, ``save_figure``) live in ``transfer_bench.analysis.plots``.
"""

from __future__ import annotations

# Each import registers its figure; the import order is the order of FIGURE_KINDS.
# isort: off
from transfer_bench.analysis.figures import sparsity  # noqa: F401
from transfer_bench.analysis.figures import transfer_matrix  # noqa: F401
from transfer_bench.analysis.figures import optimizer_transfer  # noqa: F401
from transfer_bench.analysis.figures import mask_overlap  # noqa: F401
from transfer_bench.analysis.figures import layer_density  # noqa: F401
from transfer_bench.analysis.figures import training_curves  # noqa: F401
from transfer_bench.analysis.figures import stability  # noqa: F401
# isort: on
