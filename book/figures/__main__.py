import sys
from pathlib import Path

from . import GENERATED, write_all

if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else GENERATED
    for path in write_all(out):
        print(path)
