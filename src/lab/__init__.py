"""The lab: the claims study, the diagnostics and the benchmark, built on the ``mnist_lab``
template.

``lab`` imports ``mnist_lab``; ``mnist_lab`` never imports ``lab`` (``make lint`` checks it), so a
fork drops the whole lab with ``make drop-lab``.
"""
