"""``python -m icb_kedro.grid``: see icb_kedro.grid.cli."""

from icb_kedro.grid.cli import main

if __name__ == "__main__":
    main()
