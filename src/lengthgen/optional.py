"""Libraries that only some commands need, imported when first asked for.

matplotlib, transformers and Ray are heavy (seconds to import) or optional extras; a command
that does not plot, export or use a cluster never loads them. A missing optional library is a
one-line UserError naming the install command.
"""

from __future__ import annotations

from .errors import UserError


def pyplot():
    """matplotlib.pyplot on the file-only Agg backend (no display is needed or opened)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def transformers(quiet: bool = False):
    """The transformers package; `quiet` turns its progress bars and info warnings off (sweep logs
    stay readable when many runs load models)."""
    try:
        import transformers as tf
    except ImportError:
        raise UserError("Hugging Face interop needs transformers: pip install transformers "
                        "(or pip install 'lengthgen[hf]')") from None
    if quiet:
        tf.utils.logging.set_verbosity_error()
        tf.utils.logging.disable_progress_bar()
    return tf


def ray():
    """The ray package (the `ray` sweep executor)."""
    try:
        import ray as ray_module
    except ImportError:
        raise UserError("the ray executor needs Ray: pip install 'lengthgen[ray]'") from None
    return ray_module
