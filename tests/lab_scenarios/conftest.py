from tests.lab.fixtures import lab, module_lab, rke2_artifacts  # noqa: F401  (pytest fixtures)
