"""``python -m relaybus`` runs the command line."""

from relaybus.cli import main

main()
