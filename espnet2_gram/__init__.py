"""GRAM (General-purpose Real-world Audio Model) as an ESPnet plugin.

Importing the package registers ``gram`` as a frontend and an encoder of ESPnet's own tasks
(lazily, when those are imported; see :mod:`espnet2_gram.register`).
"""

from espnet2_gram.register import install as _install_registration

__version__ = "0.1.0"

_install_registration()
