from __future__ import annotations

import sys

from knowledge_matrix.cli import main

if __name__ == "__main__":
    sys.exit(main())
