"""``make serve``: the checked local copy of a run's or a registered model, for
``mlflow models serve``."""

from mnist_lab.parts.serve import main

if __name__ == "__main__":
    raise SystemExit(main())
