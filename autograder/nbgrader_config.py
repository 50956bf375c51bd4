"""nbgrader configuration of the course (read by every ``nbgrader`` command run in ``autograder/``).

The course directory is this folder: the instructor's notebooks live in ``source/<assignment>/``;
``release/``, ``submitted/``, ``autograded/``, ``feedback/`` and ``gradebook.db`` are created here
by nbgrader at run time and are not committed.
"""

from pathlib import Path

c = get_config()  # noqa: F821 -- provided by traitlets when it loads this file

HERE = Path(__file__).resolve().parent

c.CourseDirectory.course_id = "sequence-models"
c.CourseDirectory.root = str(HERE)
c.CourseDirectory.source_directory = "source"
c.CourseDirectory.db_url = f"sqlite:///{HERE / 'gradebook.db'}"

# The graded assignments are declared in autograder/assignments.py; `nbgrader generate_assignment`
# adds each one to the gradebook when it is released.
c.GenerateAssignment.create_assignment = True

# What a student finds in place of each solution. The release step replaces the generic message
# with one that names the function (see autograder/release.py).
c.ClearSolutions.begin_solution_delimeter = "### BEGIN SOLUTION"
c.ClearSolutions.end_solution_delimeter = "### END SOLUTION"
c.ClearSolutions.code_stub = {
    "python": 'raise NotImplementedError("Replace this line with your code (see the docstring).")'
}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"

# Student versions carry no outputs; the hidden test blocks are removed from them.
c.ClearOutput.enabled = True
c.ClearHiddenTests.begin_test_delimeter = "BEGIN HIDDEN TESTS"
c.ClearHiddenTests.end_test_delimeter = "END HIDDEN TESTS"

# A cell may take a while: the hidden tests of a function run it on some 20 cases against the
# reference, and the ConvLSTM checks run convolutions. The whole notebook stays well under a
# minute when autograded (the experiments are skipped under NBGRADER_EXECUTION).
c.ExecutePreprocessor.timeout = 180
c.Execute.timeout = 180
