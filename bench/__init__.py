"""The benchmarks of the embedded stack: `python -m bench` (`make bench`; see bench/__main__.py),
bench/soak.py (`make soak`), bench/render_panels.py."""
