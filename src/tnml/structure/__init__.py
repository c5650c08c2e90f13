"""Structure learning: a tensor network's graph and ranks found from the data (:func:`learn`)."""

from tnml.structure.greedy import LearnedNetwork, StructureStep, learn

__all__ = ["LearnedNetwork", "StructureStep", "learn"]
