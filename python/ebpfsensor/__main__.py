# SPDX-License-Identifier: Apache-2.0
"""`python -m ebpfsensor` runs the command-line interface."""

import sys

from .cli import main

sys.exit(main())
