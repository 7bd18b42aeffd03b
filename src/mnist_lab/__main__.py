"""``python -m mnist_lab fit|validate|test|predict ...``"""

from mnist_lab.cli import main

if __name__ == "__main__":
    main()
