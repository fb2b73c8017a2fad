"""Physics and contract checks of the gnnff edge models (both families)."""

import json
import zipfile

import numpy as np
import pytest
import torch
from ase import Atoms

from gnnff.potentials import (
    ExportedModel,
    build_model,
    default_model_config,
    export_model,
    load,
    model_from_checkpoint,
    neighbor_list,
    read_metadata,
    save_checkpoint,
)

FAMILIES = ["allegro", "allegro-attn"]
CUTOFF = 3.5


@pytest.fixture(autouse=True)
def _threads():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def small_model(family: str, dtype=torch.float64, seed: int = 0, **over):
    torch.manual_seed(seed)
    cfg = {
        "family": family,
        "species": ["O", "Si"],
        "cutoff": CUTOFF,
        "num_layers": 2,
        "num_scalar": 8,
        "num_tensor": 4,
        "mlp_hidden": [8],
        "num_bessel": 4,
        "species_embed_dim": 4,
        "avg_num_neighbors": 8.0,
    }
    if family == "allegro-attn":
        cfg["attn_heads"] = 2
    cfg.update(over)
    model = build_model(cfg)
    model.set_species_shift_scale(torch.tensor([-4.0, -7.5]), torch.tensor([1.3, 0.7]))
    with torch.no_grad():  # make the tensor-product paths non-trivial
        for layer in model.layers:
            layer.tp.path_weight.normal_()
    return model.to(dtype).eval()


def sio2_cell(n_si: int = 5, seed: int = 1, box: float = 6.8) -> Atoms:
    """Small random periodic SiO2-like cell (min distance 1.5 A)."""
    rng = np.random.default_rng(seed)
    cell = np.diag([box, box * 1.05, box * 0.95]) + 0.3 * np.triu(rng.random((3, 3)), 1)
    pos: list[np.ndarray] = []
    atoms = Atoms(cell=cell, pbc=True)
    while len(pos) < 3 * n_si:
        p = rng.random(3) @ cell
        trial = Atoms(positions=[*pos, p], cell=cell, pbc=True)
        if len(pos) == 0 or trial.get_distances(len(pos), range(len(pos)), mic=True).min() > 1.5:
            pos.append(p)
    atoms = Atoms(["Si"] * n_si + ["O"] * (2 * n_si), positions=pos, cell=cell, pbc=True)
    return atoms


def species_of(atoms: Atoms) -> torch.Tensor:
    order = ["O", "Si"]
    return torch.tensor([order.index(s) for s in atoms.get_chemical_symbols()])


def graph(atoms: Atoms, cutoff: float = CUTOFF):
    ei, sh = neighbor_list(atoms.positions, atoms.cell.array, atoms.pbc, cutoff)
    return torch.tensor(ei), torch.tensor(sh)


def evaluate(module, atoms: Atoms, dtype=torch.float64, cutoff: float = CUTOFF):
    ei, sh = graph(atoms, cutoff)
    pos = torch.tensor(atoms.positions, dtype=dtype)
    return module(pos, species_of(atoms), ei, sh.to(dtype), len(atoms))


def energy_at(module, atoms, positions, ei, sh):
    pos = torch.tensor(positions)
    return float(module(pos, species_of(atoms), ei, sh, len(atoms))["energy"])


# ----------------------------------------------------------------------------- physics
# forces and virial vs finite differences, equivariance and permutation invariance of every
# family and softmax backend: gnnff.testing.ModelContractTests in tests/test_model_suite.py
def cluster(seed: int = 2, n: int = 10) -> Atoms:
    atoms = sio2_cell(n_si=4, seed=seed)
    atoms = atoms[:n]
    atoms.pbc = False
    atoms.cell = np.zeros((3, 3))
    atoms.positions = atoms.get_positions() + 0.0
    return atoms


@pytest.mark.parametrize("family", FAMILIES)
def test_strict_locality_and_fragment_additivity(family):
    model = ExportedModel(small_model(family))
    a = cluster(2)
    base = evaluate(model, a)
    dist = a.get_all_distances()
    # move the atom farthest from atom 0 while it stays beyond the cutoff of atom 0
    far = int(np.argmax(dist[0]))
    assert dist[0, far] > CUTOFF + 0.3
    moved = a.copy()
    step = (a.positions[far] - a.positions[0]) / dist[0, far] * 0.2
    moved.positions[far] += step + np.array([0.0, 0.05, -0.05])
    assert moved.get_distance(0, far) > CUTOFF
    out = evaluate(model, moved)
    assert abs(float(out["atomic_energy"][0] - base["atomic_energy"][0])) < 1e-12
    assert not torch.allclose(out["atomic_energy"], base["atomic_energy"], atol=1e-9)

    b = cluster(7)
    both = a + Atoms(b.get_chemical_symbols(), positions=b.positions + [30.0, 0.0, 0.0])
    ea, eb, eab = evaluate(model, a), evaluate(model, b), evaluate(model, both)
    assert abs(float(eab["energy"] - ea["energy"] - eb["energy"])) < 1e-10
    assert torch.allclose(eab["forces"][: len(a)], ea["forces"], atol=1e-12)


def dimer_or_trimer(model, r_cross: float, r_fixed: float | None):
    """Atom 0 at the origin, atom 1 at r_cross on x (crossing the cutoff), optionally atom 2 at
    r_fixed on y. Edges are given for every pair (even beyond the cutoff)."""
    pos = [[0.0, 0.0, 0.0], [r_cross, 0.0, 0.0]]
    if r_fixed is not None:
        pos.append([0.0, r_fixed, 0.0])
    pos_t = torch.tensor(pos, dtype=torch.float64)
    n = len(pos)
    ei = torch.tensor([[i, j] for i in range(n) for j in range(n) if i != j]).T
    species = torch.tensor([1, 0, 0][:n])
    return model(pos_t, species, ei, torch.zeros(ei.shape[1], 3, dtype=torch.float64), n)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("r_fixed", [None, 2.0])
def test_zero_force_at_cutoff_and_continuity(family, r_fixed):
    model = ExportedModel(small_model(family))
    at = dimer_or_trimer(model, CUTOFF, r_fixed)
    beyond = dimer_or_trimer(model, CUTOFF + 0.5, r_fixed)
    assert torch.all(at["forces"][1] == 0.0)
    assert torch.all(beyond["forces"][1] == 0.0)
    assert torch.allclose(at["atomic_energy"], beyond["atomic_energy"], atol=1e-13)
    # energy and force of the crossing atom approach their cutoff values smoothly
    prev = None
    for delta in (1e-1, 1e-2, 1e-3):
        near = dimer_or_trimer(model, CUTOFF - delta, r_fixed)
        de = abs(float(near["energy"] - at["energy"]))
        df = float(near["forces"].abs().max() if r_fixed is None else near["forces"][1].norm())
        assert de < 50 * delta**3 and df < 50 * delta**2
        if prev is not None:
            assert de < prev
        prev = de
    if r_fixed is not None:  # the fixed neighbour still interacts
        assert float(at["forces"][2].norm()) > 1e-4


def test_attention_weights_vanish_at_cutoff():
    model = small_model("allegro-attn")
    layer = model.layers[0]
    x = torch.randn(3, 8, dtype=torch.float64)
    u = torch.tensor([0.7, 1e-9, 0.0], dtype=torch.float64)
    log_u = torch.log(u.clamp(min=1e-30))
    centre = torch.zeros(3, dtype=torch.long)
    w = layer.env_weights(x, u, log_u, centre, 1, torch.tensor(1.0, dtype=torch.float64))
    assert torch.all(w[2] == 0) and w[1].abs().max() < 1e-15 and w[0].abs().max() > 1e-3


# ----------------------------------------------------------------------------- export
@pytest.mark.parametrize("family", FAMILIES)
def test_torchscript_matches_eager_and_roundtrip(family, tmp_path):
    model = small_model(family)
    atoms = sio2_cell()
    eager = evaluate(ExportedModel(model), atoms)
    summary = {"data_sha256": "abc", "final": {"force_mae": 0.1}}
    path = export_model(model, tmp_path / "m.pt", dtype="float64", training_summary=summary)
    scripted, meta = load(path)
    out = evaluate(scripted, atoms)
    for key in eager:
        assert torch.allclose(out[key], eager[key], atol=1e-12, rtol=0), key
    assert meta["format"] == "gnnff-model" and meta["format_version"] == 1
    assert meta["species"] == ["O", "Si"] and meta["cutoff"] == CUTOFF
    assert meta["family"] == family and meta["dtype"] == "float64"
    assert meta["training"] == summary and meta["hyperparameters"] == model.config
    assert meta["softmax"] == {"backend": "float", "bits": None}
    assert read_metadata(path) == meta

    p32 = export_model(model, tmp_path / "m32.pt", dtype="float32")
    s32, meta32 = load(p32)
    assert meta32["dtype"] == "float32"
    out32 = evaluate(s32, atoms, dtype=torch.float32)
    assert out32["forces"].dtype == torch.float32
    assert torch.allclose(out32["energy"].double(), eager["energy"], rtol=1e-5)
    assert torch.allclose(out32["forces"].double(), eager["forces"], atol=1e-4)
    # float64 inputs are cast to the model dtype rather than failing
    assert torch.isfinite(evaluate(s32, atoms, dtype=torch.float64)["energy"])


@pytest.mark.parametrize("family", FAMILIES)
def test_checkpoint_roundtrip(family, tmp_path):
    model = small_model(family, dtype=torch.float32)
    model.set_avg_num_neighbors(11.5)
    path = save_checkpoint(tmp_path / "c.pt", model, training_summary={"epochs": 3})
    ckpt = torch.load(path, weights_only=True)
    assert ckpt["format"] == "gnnff-checkpoint" and ckpt["format_version"] == 1
    again = model_from_checkpoint(path)
    assert again.config == model.config and again.config["avg_num_neighbors"] == 11.5
    atoms = sio2_cell()
    a = evaluate(ExportedModel(model), atoms, torch.float32)
    b = evaluate(ExportedModel(again), atoms, torch.float32)
    assert torch.equal(a["forces"], b["forces"])


def test_load_rejects_other_files(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(ValueError, match="not a gnnff model file.*gnnff export"):
        load(text)
    ckpt = save_checkpoint(tmp_path / "c.pt", small_model("allegro"))
    with pytest.raises(ValueError, match="not a gnnff model file.*checkpoint"):
        load(ckpt)
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "missing.pt")
    # a model file whose metadata has another version
    good = export_model(small_model("allegro"), tmp_path / "m.pt")
    bad = tmp_path / "bad.pt"
    with zipfile.ZipFile(good) as zin, zipfile.ZipFile(bad, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename.endswith("extra/metadata.json"):
                meta = json.loads(data)
                meta["format_version"] = 99
                data = json.dumps(meta).encode()
            zout.writestr(item, data)
    with pytest.raises(ValueError, match="format_version 99"):
        load(bad)


def test_softmax_backend_swap_and_features():
    model = small_model("allegro-attn")
    atoms = sio2_cell()
    ei, sh = graph(atoms)
    vec = torch.tensor(atoms.positions)[ei[1]] - torch.tensor(atoms.positions)[ei[0]] + sh
    e0, feats = model.energy_from_edges(vec, species_of(atoms), ei, len(atoms), True)
    assert len(feats) == model.num_layers
    assert all(f.shape == (ei.shape[1], 8) for f in feats)
    e1, none = model.energy_from_edges(vec, species_of(atoms), ei, len(atoms))
    assert none == [] and torch.equal(e0, e1)
    model.set_softmax_backend("float", None)
    assert model.config["softmax"] == {"backend": "float", "bits": None}
    with pytest.raises(ValueError, match="softmax"):
        model.set_softmax_backend("no-such-backend", 8)
    with pytest.raises(ValueError, match="allegro-attn"):
        small_model("allegro").set_softmax_backend("float")


# ----------------------------------------------------------------------------- bad input
def test_config_validation():
    cfg = default_model_config("allegro-attn")
    assert cfg["cutoff"] == 5.0 and cfg["softmax"]["backend"] == "float"
    m = build_model({"family": "allegro", "species": ["Si", "O"], "cutoff": 4.0})
    assert m.config["l_max"] == 1 and m.cutoff == 4.0 and m.species == ["Si", "O"]
    with pytest.raises(ValueError, match="did you mean 'num_layers'"):
        build_model({"family": "allegro", "species": ["Si"], "num_layer": 3})
    with pytest.raises(ValueError, match="did you mean 'allegro-attn'"):
        build_model({"family": "allegro-atn", "species": ["Si"]})
    with pytest.raises(ValueError, match="only applies to family 'allegro-attn'"):
        build_model({"family": "allegro", "species": ["Si"], "attn_heads": 2})
    with pytest.raises(ValueError, match="species"):
        build_model({"family": "allegro", "species": ["Xx"]})


@pytest.mark.parametrize("family", FAMILIES)
def test_bad_and_degenerate_inputs(family, tmp_path):
    model = small_model(family)
    scripted, _ = load(export_model(model, tmp_path / "m.pt"))
    for module in (ExportedModel(model), scripted):
        pos = torch.tensor([[0.0, 0.0, 0.0], [1.6, 0.0, 0.0]], dtype=torch.float64)
        ei = torch.tensor([[0, 1], [1, 0]])
        zero = torch.zeros(2, 3, dtype=torch.float64)
        with pytest.raises(Exception, match="species index out of range"):
            module(pos, torch.tensor([0, 5]), ei, zero, 2)
        with pytest.raises(Exception, match="zero length"):
            module(pos, torch.tensor([0, 1]), torch.tensor([[0, 0], [0, 0]]), zero, 2)
        # no edges: energy is the sum of the shifts, forces and virial vanish
        empty = module(
            pos,
            torch.tensor([0, 1]),
            torch.zeros(2, 0, dtype=torch.long),
            torch.zeros(0, 3, dtype=torch.float64),
            2,
        )
        assert float(empty["energy"]) == pytest.approx(-11.5)
        assert torch.all(empty["forces"] == 0) and torch.all(empty["virial"] == 0)
        single = module(
            pos[:1],
            torch.tensor([1]),
            torch.zeros(2, 0, dtype=torch.long),
            torch.zeros(0, 3, dtype=torch.float64),
            1,
        )
        assert float(single["energy"]) == pytest.approx(-7.5)
        out = module(pos, torch.tensor([0, 1]), ei, zero, 2)
        assert all(torch.isfinite(v).all() for v in out.values())


def test_zbl_prior_is_separable_and_switched_off():
    base = small_model("allegro", zbl=False)
    zbl = small_model("allegro", zbl=True, zbl_r_on=1.0, zbl_r_off=2.0)
    m0, m1 = ExportedModel(base), ExportedModel(zbl)

    def energy(m, r):
        return float(dimer_or_trimer(m, r, None)["energy"])

    # the learned part is identical (same seed); the difference is the ZBL pair energy
    diff_close = energy(m1, 0.8) - energy(m0, 0.8)
    assert diff_close > 1.0  # Si-O at 0.8 A: several eV of nuclear repulsion
    assert energy(m1, 2.0) == pytest.approx(energy(m0, 2.0), abs=1e-12)
    assert 0 < energy(m1, 1.99) - energy(m0, 1.99) < 1e-4
    zbl.set_zbl(False)
    assert energy(ExportedModel(zbl), 0.8) == pytest.approx(energy(m0, 0.8), abs=1e-12)


@pytest.mark.parametrize("family", FAMILIES)
def test_lmax2_equivariance_and_forces(family):
    model = ExportedModel(small_model(family, l_max=2))
    atoms = sio2_cell(n_si=3, seed=4)
    ei, sh = graph(atoms)
    base = evaluate(model, atoms)
    rng = np.random.default_rng(8)
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    rt = torch.tensor(-q)
    out = model(torch.tensor(atoms.positions) @ rt.T, species_of(atoms), ei, sh @ rt.T, 9)
    assert torch.allclose(out["energy"], base["energy"], atol=1e-10)
    assert torch.allclose(out["forces"], base["forces"] @ rt.T, atol=1e-10)
    eps = 1e-3
    for a, d in [(0, 0), (4, 1), (8, 2)]:
        p = atoms.positions.copy()
        p[a, d] += eps
        ep = energy_at(model, atoms, p, ei, sh)
        p[a, d] -= 2 * eps
        em = energy_at(model, atoms, p, ei, sh)
        assert float(base["forces"][a, d]) == pytest.approx(-(ep - em) / (2 * eps), abs=1e-6)


@pytest.mark.parametrize("backend,bits", [("lut-rexp", 8), ("lut-2d", 16)])
def test_export_with_lut_softmax(backend, bits, tmp_path):
    model = small_model("allegro-attn")
    atoms = sio2_cell()
    ref = evaluate(ExportedModel(model), atoms)
    path = export_model(model, tmp_path / "m.pt", softmax={"backend": backend, "bits": bits})
    scripted, meta = load(path)
    assert meta["softmax"] == {"backend": backend, "bits": bits}
    assert meta["hyperparameters"]["softmax"] == meta["softmax"]
    assert model.config["softmax"]["backend"] == "float"  # the source model is untouched
    out = evaluate(scripted, atoms)
    assert all(torch.isfinite(v).all() for v in out.values())
    assert float((out["forces"] - ref["forces"]).abs().max()) < 1e-2


@pytest.mark.parametrize("l_max", [1, 2])
def test_scalar_only_tensor_product_equals_the_full_one(l_max):
    """The last layer evaluates only the scalar paths of its tensor product (nothing reads its
    tensor output): those scalars equal the full product's, bit for bit."""
    from gnnff.potentials.blocks import ChannelwiseTensorProduct

    torch.manual_seed(3)
    tp = ChannelwiseTensorProduct(l_max, 4).to(torch.float64)
    with torch.no_grad():
        tp.path_weight.normal_()
    d = (l_max + 1) ** 2
    x1, x2 = torch.randn(7, 4, d, dtype=torch.float64), torch.randn(7, 4, d, dtype=torch.float64)
    full_scalars, full_tensor = tp(x1, x2)
    scalars, tensor = tp(x1, x2, False)
    assert full_tensor.shape == (7, 4, d) and tensor.shape == (7, 4, 0)
    assert scalars.shape == (7, 4 * tp.num_scalar_paths)
    assert torch.equal(scalars, full_scalars)
