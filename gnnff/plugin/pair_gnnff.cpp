/* pair_style gnnff: a gnnff TorchScript force field as a LAMMPS pair style (plugin).
   Part of gnnff (GPL-2.0-or-later).

   The model contract (docs/model_contract.md): forward(pos [N,3], species [N] int64,
   edge_index [2,E] int64, edge_shift [E,3], n_local) -> {energy, atomic_energy [n_local],
   forces [N,3], virial [3,3], atomic_virial [N,3,3]}. Here N = local atoms + the ghost atoms
   that some local centre actually references (compact indexing), edges run from local centres
   only, and edge_shift is zero because ghosts are explicit atoms. Forces land on local and
   ghost atoms; LAMMPS sums the ghost forces back to their owners (newton on). */

#include "pair_gnnff.h"

#include "atom.h"
#include "comm.h"
#include "error.h"
#include "force.h"
#include "json.h"
#include "memory.h"
#include "neigh_list.h"
#include "neighbor.h"
#include "update.h"

#include <ATen/Parallel.h>
#include <torch/script.h>

#include <cmath>
#include <malloc.h>
#include <cstdlib>
#include <cstring>
#include <fstream>

using namespace LAMMPS_NS;

namespace LAMMPS_NS {
struct GnnffModel {
  torch::jit::Module module;
  torch::Dtype dtype = torch::kFloat64;
};
}    // namespace LAMMPS_NS

static std::string first_line(const std::string &s)
{
  auto pos = s.find('\n');
  return pos == std::string::npos ? s : s.substr(0, pos);
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
  // [1] number of edges
  nextra = 2;
  pvector = new double[nextra];
  pvector[0] = pvector[1] = 0.0;
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
  if (narg != 0)
    error->all(FLERR,
               "pair_style gnnff takes no arguments (got '{}'); the model file goes on the "
               "pair_coeff line: pair_style gnnff / pair_coeff * * model.pt O Si",
               arg[0]);
}

void PairGnnff::load_model(const std::string &path)
{
  {
    std::ifstream probe(path, std::ios::binary);
    if (!probe.good())
      error->all(FLERR,
                 "pair_coeff gnnff: model file '{}' not found or not readable. Give the path "
                 "of a model exported with `gnnff export` (for example: -var model "
                 "/path/to/model.pt and pair_coeff * * ${{model}} O Si)",
                 path);
  }
  torch::jit::ExtraFilesMap extra{{"metadata.json", ""}};
  auto m = std::make_unique<GnnffModel>();
  try {
    m->module = torch::jit::load(path, torch::kCPU, extra);
  } catch (const std::exception &e) {
    error->all(FLERR,
               "pair_coeff gnnff: '{}' is not a TorchScript model file ({}). LAMMPS needs the "
               "exported model (`gnnff export CHECKPOINT --out model.pt`), not a training "
               "checkpoint or state dict",
               path, first_line(e.what()));
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
  m->module.eval();
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
  load_model(arg[2]);

  std::string have;
  for (auto &s : model_species) have += (have.empty() ? "" : " ") + s;
  if (narg - 3 != ntypes)
    error->all(FLERR,
               "pair_coeff gnnff: got {} element symbol(s) for {} atom type(s); give exactly one "
               "symbol per LAMMPS atom type in type order, chosen from the model's species: {}",
               narg - 3, ntypes, have);
  for (int t = 1; t <= ntypes; t++) {
    std::string sym = arg[2 + t];
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
  for (int i = 1; i <= ntypes; i++)
    for (int j = i; j <= ntypes; j++) setflag[i][j] = 1;
}

void PairGnnff::init_style()
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
  neighbor->add_request(this, NeighConst::REQ_FULL);
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

  diag[0] = cutoff;
  diag[1] = 0.0;
  pvector[0] = pvector[1] = 0.0;
  // a rank whose sub-domain holds no atoms has nothing to evaluate (its ghosts are owned and
  // evaluated elsewhere)
  if (nlocal == 0) return;

  const int inum = list->inum;
  const int *ilist = list->ilist;
  const int *numneigh = list->numneigh;
  int **firstneigh = list->firstneigh;

  // compact indexing: all local atoms keep their index, ghosts referenced by an edge follow
  lmp2model.assign(nall, -1);
  model2lmp.resize(nlocal);
  for (int i = 0; i < nlocal; i++) {
    lmp2model[i] = i;
    model2lmp[i] = i;
  }
  edge_i.clear();
  edge_j.clear();
  const double cutsq_model = cutoff * cutoff;
  double minrsq = cutsq_model;
  for (int ii = 0; ii < inum; ii++) {
    const int i = ilist[ii];
    const double xi = x[i][0], yi = x[i][1], zi = x[i][2];
    const int *jlist = firstneigh[i];
    const int jnum = numneigh[i];
    for (int jj = 0; jj < jnum; jj++) {
      const int j = jlist[jj] & NEIGHMASK;
      const double dx = x[j][0] - xi, dy = x[j][1] - yi, dz = x[j][2] - zi;
      const double rsq = dx * dx + dy * dy + dz * dz;
      if (rsq >= cutsq_model) continue;
      if (rsq < minrsq) minrsq = rsq;
      int m = lmp2model[j];
      if (m < 0) {
        m = (int) model2lmp.size();
        lmp2model[j] = m;
        model2lmp.push_back(j);
      }
      edge_i.push_back(i);
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
    auto p = pos.accessor<double, 2>();
    auto s = species.accessor<int64_t, 1>();
    for (int64_t m = 0; m < n; m++) {
      const int k = model2lmp[m];
      p[m][0] = x[k][0];
      p[m][1] = x[k][1];
      p[m][2] = x[k][2];
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

  c10::IValue result;
  try {
    std::vector<torch::jit::IValue> inputs{pos.to(dt), species, edges, shift,
                                           (int64_t) nlocal};
    result = model->module.forward(inputs);
  } catch (const std::exception &e) {
    error->one(FLERR, "pair gnnff: evaluating model '{}' failed: {}", model_path,
               first_line(e.what()));
  }
  auto out = result.toGenericDict();
  auto get = [&](const char *key) -> torch::Tensor {
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
    for (int i = 0; i < nlocal; i++) {
      if (!std::isfinite(a[i])) nonfinite++;
      esum += a[i];
      if (eflag_atom) eatom[i] += a[i];
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
