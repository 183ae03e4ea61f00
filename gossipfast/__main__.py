"""``python -m gossipfast`` is the ``gossipfast`` console script."""

from .cli import main

if __name__ == "__main__":
    main()
