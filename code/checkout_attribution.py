"""The job's entry script: submits the checkout-attribution job (attribution/pipeline.py).

The Kubernetes operator's application mode runs this file on the JobManager; elsewhere
`make job` runs `python -m attribution.pipeline`. `--help` lists the options.
"""

import sys

from attribution.pipeline import main

if __name__ == "__main__":
    sys.exit(main())
