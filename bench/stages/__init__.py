"""The stages of make bench (bench/run.py), one file each."""
