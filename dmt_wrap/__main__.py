"""``python -m dmt_wrap COMMAND ...``: the same as the ``dmt-wrap`` console script."""
from dmt_wrap.cli import main

raise SystemExit(main())
