"""End-to-end recipes that the ``tnml`` command runs and Python users can call: datasets by
name with the preprocessing record saved beside a model (:mod:`tnml.workflows.data`), and
training a model from a dataset to a saved file (:mod:`tnml.workflows.train`).
"""
