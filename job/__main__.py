"""`python -m job`: the job program's commands (render, news, demo, schema)."""

import sys

from job.cli import main

sys.exit(main())
