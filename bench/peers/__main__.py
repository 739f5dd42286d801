"""`python -m bench.peers SYSTEM COMMAND ...`: the peers' W3 scripts, for bench/bench_e2e.py.

Run with bench/.peers-venv's python (procrastinate and DBOS are not the project's
dependencies). The script is imported by its own name, not run as `__main__`: procrastinate
warns about an App built in the `__main__` module.
"""

import sys
from importlib import import_module

SCRIPTS = {"procrastinate": "bench.peers.procrastinate_w3", "dbos": "bench.peers.dbos_w3"}


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in SCRIPTS:
        sys.exit(f"usage: python -m bench.peers {{{','.join(SCRIPTS)}}} COMMAND [OPTIONS]")
    import_module(SCRIPTS[sys.argv.pop(1)]).main()


if __name__ == "__main__":
    main()
