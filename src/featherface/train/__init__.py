"""Optional training and evaluation stack (``pip install "featherface[train]"``).

Nothing outside ``featherface.train`` imports this package.
"""
