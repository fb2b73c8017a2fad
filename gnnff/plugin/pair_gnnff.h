/* pair_style gnnff: a gnnff TorchScript force field as a LAMMPS pair style (plugin).
   Part of gnnff (GPL-2.0-or-later). Built by `gnnff lammps build-plugin`. */

#ifndef LMP_PAIR_GNNFF_H
#define LMP_PAIR_GNNFF_H

#include "pair.h"

#include <memory>
#include <string>
#include <vector>

namespace LAMMPS_NS {

struct GnnffModel;    // holds the torch::jit::Module; defined in pair_gnnff.cpp

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

 protected:
  std::unique_ptr<GnnffModel> model;
  std::string model_path;
  std::vector<std::string> model_species;
  std::vector<long> type2species;    // index: LAMMPS type 1..ntypes
  double cutoff;
  bool model_float64;

  // scratch buffers reused between steps
  std::vector<int> lmp2model;    // LAMMPS local/ghost index -> model index, -1 if unused
  std::vector<int> model2lmp;
  std::vector<double> pos_buf;
  std::vector<long> species_buf;
  std::vector<long> edge_i, edge_j;

  void allocate();
  void load_model(const std::string &path);
};

}    // namespace LAMMPS_NS

#endif
