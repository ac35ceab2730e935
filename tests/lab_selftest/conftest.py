from tests.lab.fixtures import lab, module_lab, realparts_artifacts  # noqa: F401
