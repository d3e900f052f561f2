"""`python -m biax_keras ...` is the `biax` command."""

import sys

from biax_keras.app.cli import main

sys.exit(main())
