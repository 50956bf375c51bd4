"""Grading for the course assignments: nbgrader configuration, source notebooks, checks, release."""
