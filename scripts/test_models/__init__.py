"""Building the small test models of scripts/make_test_models.py (see tests/models/README.md)."""
