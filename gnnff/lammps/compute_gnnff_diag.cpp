/* compute ID group gnnff/diag

   Global vector (intensive) of stability diagnostics, reduced over all MPI ranks:
     [1] minimum interatomic distance (A) among the model's edges (the model cutoff if no pair
         is closer than the cutoff), MPI_MIN
     [2] maximum atomic force magnitude (eV/A) over atoms of the group, from the total force
         after LAMMPS summed ghost forces back, MPI_MAX
     [3] number of non-finite values (model outputs, forces and positions of the group), MPI_SUM
   Usable in thermo_style (c_ID[1]) and fix halt (through an equal-style variable).
   Part of gnnff (GPL-2.0-or-later). */

#include "compute_gnnff_diag.h"

#include "atom.h"
#include "error.h"
#include "force.h"
#include "pair.h"
#include "update.h"

#include <cmath>

using namespace LAMMPS_NS;

ComputeGnnffDiag::ComputeGnnffDiag(LAMMPS *lmp, int narg, char **arg) :
    Compute(lmp, narg, arg), pair(nullptr)
{
  if (narg != 3)
    error->all(FLERR, "compute gnnff/diag takes no arguments: compute ID group gnnff/diag");
  vector_flag = 1;
  size_vector = 3;
  extvector = 0;
  vector = new double[size_vector];
  for (int k = 0; k < size_vector; k++) vector[k] = 0.0;
}

ComputeGnnffDiag::~ComputeGnnffDiag()
{
  delete[] vector;
}

void ComputeGnnffDiag::init()
{
  pair = force->pair_match("gnnff", 1, 0);
  if (!pair) pair = force->pair_match("gnnff", 0, 0);
  if (!pair)
    error->all(FLERR,
               "compute gnnff/diag needs pair_style gnnff (define the pair style before the "
               "run that uses this compute)");
}

void ComputeGnnffDiag::compute_vector()
{
  invoked_vector = update->ntimestep;
  int dim = 0;
  auto *d = (double *) pair->extract("gnnff/diag", dim);
  if (!d) error->all(FLERR, "compute gnnff/diag: pair style does not expose gnnff diagnostics");

  double **x = atom->x;
  double **f = atom->f;
  const int *mask = atom->mask;
  const int nlocal = atom->nlocal;
  double fmax2 = 0.0;
  double nonfinite = d[1];
  for (int i = 0; i < nlocal; i++) {
    if (!(mask[i] & groupbit)) continue;
    const double f2 = f[i][0] * f[i][0] + f[i][1] * f[i][1] + f[i][2] * f[i][2];
    if (!std::isfinite(f2)) {
      nonfinite += 1.0;
      continue;
    }
    if (!std::isfinite(x[i][0] + x[i][1] + x[i][2])) nonfinite += 1.0;
    if (f2 > fmax2) fmax2 = f2;
  }
  double local_min = d[0], local_max = std::sqrt(fmax2);
  MPI_Allreduce(&local_min, &vector[0], 1, MPI_DOUBLE, MPI_MIN, world);
  MPI_Allreduce(&local_max, &vector[1], 1, MPI_DOUBLE, MPI_MAX, world);
  MPI_Allreduce(&nonfinite, &vector[2], 1, MPI_DOUBLE, MPI_SUM, world);
}
