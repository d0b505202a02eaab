"""Local servers that implement outside services' documented HTTP contracts, for tests."""
