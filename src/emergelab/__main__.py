"""`python -m emergelab` runs the CLI."""
from emergelab.cli import main

main()
