"""Model files: checkpoints (:mod:`.checkpoint`), export (:mod:`.export`: TorchScript files
wrapping :class:`.exported.ExportedModel`, or AOTInductor packages, :mod:`.aoti`), reading
(:mod:`.load`) and the format checks both sides share (:mod:`.formats`). What a file holds is
stated once in :mod:`gnnff.potentials.contract`."""
