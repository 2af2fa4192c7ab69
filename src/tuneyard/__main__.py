"""``python -m tuneyard`` runs the CLI (also how torchrun starts it)."""

from tuneyard.cli import main

if __name__ == "__main__":
    main()
