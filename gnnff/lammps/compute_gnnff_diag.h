/* compute gnnff/diag: MPI-reduced stability diagnostics of pair_style gnnff.
   Part of gnnff (GPL-2.0-or-later). */

#ifndef LMP_COMPUTE_GNNFF_DIAG_H
#define LMP_COMPUTE_GNNFF_DIAG_H

#include "compute.h"

namespace LAMMPS_NS {

class ComputeGnnffDiag : public Compute {
 public:
  ComputeGnnffDiag(class LAMMPS *, int, char **);
  ~ComputeGnnffDiag() override;
  void init() override;
  void compute_vector() override;

 private:
  class Pair *pair;
};

}    // namespace LAMMPS_NS

#endif
