/* pair_style gnnff: a gnnff TorchScript force field as a LAMMPS pair style (plugin).
   Part of gnnff (GPL-2.0-or-later). Built by `gnnff lammps build-plugin`. */

#ifndef LMP_PAIR_GNNFF_H
#define LMP_PAIR_GNNFF_H

#include "pair.h"

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace LAMMPS_NS {

struct GnnffModel;    // holds the TorchScript module or AOTInductor package (pair_gnnff.cpp)

class PairGnnff : public Pair {
 public:
  PairGnnff(class LAMMPS *);
  ~PairGnnff() override;
  void compute(int, int) override;
  void settings(int, char **) override;
  void coeff(int, char **) override;
  void init_style() override;
  double init_one(int, int) override;
  void *extract(const char *, int &) override;

  // Per-rank stability diagnostics of the last force call, read by compute gnnff/diag:
  // [0] minimum distance (A) over this rank's edges (model cutoff if none),
  // [1] number of non-finite values in this rank's model outputs.
  double diag[2];

  // Per model-species-pair minimum squared distance (A^2) over this rank's edges of the last
  // force call (cutoff^2 if none), and the atom IDs of that closest pair; index a*ns+b, a <= b.
  std::vector<double> pair_minsq;
  std::vector<tagint> pair_tag_i, pair_tag_j;

  // what fix gnnff/stability needs to know about the model
  const std::vector<std::string> &species() const { return model_species; }
  long type_species(int t) const { return type2species[t]; }    // -1: NULL (other sub-style)
  const std::string &model_file() const { return model_path; }
  double model_cutoff() const { return cutoff; }
  // training-set minimum distance per species pair ("O-Si" -> A) stored in the model, if any
  const std::map<std::string, double> &reference_min() const { return ref_pair_min; }
  std::string reference_source() const { return ref_source; }

 protected:
  std::unique_ptr<GnnffModel> model;
  std::string model_path;
  std::vector<std::string> model_species;
  std::vector<long> type2species;    // index: LAMMPS type 1..ntypes
  double cutoff;
  bool model_float64;
  long max_block_edges = -1;    // pair_style option; -1: the model file's own setting
  bool check_masses = true;     // pair_style option check_masses yes/no
  bool warned_unknown_element = false;
  std::map<std::string, double> ref_pair_min;
  std::string ref_source;

  // scratch buffers reused between steps
  std::vector<int> lmp2model;    // LAMMPS local/ghost index -> model index, -1 if unused
  std::vector<int> model2lmp;
  std::vector<double> pos_buf;
  std::vector<long> species_buf;
  std::vector<long> edge_i, edge_j;

  void allocate();
  void load_model(const std::string &path);
  std::string load_package(const std::string &path, GnnffModel &m);    // metadata.json text
  std::string resolve_model_file(const std::string &name);
  // setup checks, all run from init_style() (so commands given after pair_coeff count)
  void check_setup();
  void check_special_bonds();
  void check_type_masses();
  void add_driver_monitor();
};

}    // namespace LAMMPS_NS

#endif
