/* Configurations of fix gnnff/stability: gathered on rank 0 (atoms sorted by ID), written as
   binary frames for `gnnff lammps run` and as extended XYZ for the failing frames.

   Binary frame (native byte order): 8 bytes "GNNFFFR1", 16 float64 [step, time_ps, n,
   cell a b c rows (9, A), pbc x y z (1/0), temperature K], n int32 atom types, 3n float64
   positions (A, relative to boxlo), atoms in ascending ID order. Reader: gnnff/lammps/records.py.

   failing.extxyz: the `keep` checked configurations before the first failed check and the
   failing one; per atom: species, pos, id (LAMMPS atom ID), type; info fields as named in
   gnnff/stability/failing.py (step, time_ps, temperature, criterion, pair, value, threshold,
   atom_indices, is_failure, failed_step, source). No energies or forces (model labels).
   Part of gnnff (GPL-2.0-or-later). */

#include "fix_gnnff_stability.h"

#include "atom.h"
#include "comm.h"
#include "domain.h"
#include "error.h"
#include "update.h"
#include "utils.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>

using namespace LAMMPS_NS;

bool FixGnnffStability::gather_frame(GnnffFrame &fr)
{
  const int nlocal = atom->nlocal;
  std::vector<double> buf(5 * (size_t) nlocal);
  for (int i = 0; i < nlocal; i++) {
    buf[5 * i] = (double) atom->tag[i];
    buf[5 * i + 1] = (double) atom->type[i];
    for (int d = 0; d < 3; d++) buf[5 * i + 2 + d] = atom->x[i][d] - domain->boxlo[d];
  }
  const int nprocs = comm->nprocs;
  int mine = 5 * nlocal;
  std::vector<int> counts(nprocs), displs(nprocs);
  MPI_Gather(&mine, 1, MPI_INT, counts.data(), 1, MPI_INT, 0, world);
  std::vector<double> all;
  if (comm->me == 0) {
    std::partial_sum(counts.begin(), counts.end() - 1, displs.begin() + 1);
    all.resize((size_t) displs.back() + counts.back());
  }
  MPI_Gatherv(buf.data(), mine, MPI_DOUBLE, all.data(), counts.data(), displs.data(), MPI_DOUBLE,
              0, world);
  if (comm->me != 0) return false;
  const size_t n = all.size() / 5;
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return all[5 * a] < all[5 * b]; });
  fr.tag.resize(n);
  fr.type.resize(n);
  fr.x.resize(3 * n);
  for (size_t k = 0; k < n; k++) {
    const double *p = &all[5 * order[k]];
    fr.tag[k] = p[0];
    fr.type[k] = p[1];
    for (int d = 0; d < 3; d++) fr.x[3 * k + d] = p[2 + d];
  }
  fr.step = update->ntimestep;
  fr.time_ps = elapsed_ps();
  const double c[9] = {domain->xprd, 0.0, 0.0, domain->xy, domain->yprd, 0.0,
                       domain->xz, domain->yz, domain->zprd};
  std::copy(c, c + 9, fr.cell);
  for (int d = 0; d < 3; d++) fr.pbc[d] = domain->periodicity[d];
  return true;
}

void FixGnnffStability::write_frame_binary(const GnnffFrame &fr)
{
  const size_t n = fr.tag.size();
  double head[16] = {(double) fr.step, fr.time_ps, (double) n};
  std::copy(fr.cell, fr.cell + 9, head + 3);
  for (int d = 0; d < 3; d++) head[12 + d] = fr.pbc[d];
  head[15] = fr.temperature;
  std::vector<int> types(n);
  for (size_t k = 0; k < n; k++) types[k] = (int) fr.type[k];
  fwrite("GNNFFFR1", 1, 8, frames);
  fwrite(head, sizeof(double), 16, frames);
  fwrite(types.data(), sizeof(int), n, frames);
  fwrite(fr.x.data(), sizeof(double), 3 * n, frames);
  fflush(frames);
}

static long index_of_tag(const GnnffFrame &fr, double tag)
{
  auto it = std::lower_bound(fr.tag.begin(), fr.tag.end(), tag);
  return (it != fr.tag.end() && *it == tag) ? (long) (it - fr.tag.begin()) : -1;
}

void FixGnnffStability::write_failing(const std::string &criterion, const std::string &pairkey,
                                      double value, double thresh, double tag_i, double tag_j)
{
  FILE *fp = fopen(failing_path.c_str(), "w");
  if (!fp) {
    error->warning(FLERR, "fix gnnff/stability: cannot write failing frames to {}: {}",
                   failing_path, utils::getsyserror());
    return;
  }
  const bigint failed_step = ring.empty() ? update->ntimestep : ring.back().step;
  for (size_t f = 0; f < ring.size(); f++) {
    const GnnffFrame &fr = ring[f];
    const size_t n = fr.tag.size();
    const bool is_fail = f + 1 == ring.size();
    const long ii = tag_i > 0 ? index_of_tag(fr, tag_i) : -1;
    const long jj = tag_j > 0 ? index_of_tag(fr, tag_j) : -1;
    fputs(fmt::format("{}\n", n).c_str(), fp);
    fputs(fmt::format("Lattice=\"{:.17g} {:.17g} {:.17g} {:.17g} {:.17g} {:.17g} {:.17g} {:.17g} "
                   "{:.17g}\" Properties=species:S:1:pos:R:3:id:I:1:type:I:1 pbc=\"{} {} {}\" ",
               fr.cell[0], fr.cell[1], fr.cell[2], fr.cell[3], fr.cell[4], fr.cell[5],
               fr.cell[6], fr.cell[7], fr.cell[8], fr.pbc[0] ? "T" : "F", fr.pbc[1] ? "T" : "F",
               fr.pbc[2] ? "T" : "F").c_str(), fp);
    fputs(fmt::format("step={} time_ps={:.17g} temperature={:.17g} criterion={} pair={} "
                   "value={:.17g} threshold={:.17g} atom_indices=\"{} {}\" is_failure={} "
                   "failed_step={} source=\"{}\"\n",
               fr.step, fr.time_ps, fr.temperature, criterion,
               pairkey.empty() ? "none" : pairkey, value, thresh, ii, jj, is_fail ? "T" : "F",
               failed_step, label).c_str(), fp);
    for (size_t k = 0; k < n; k++)
      fputs(fmt::format("{} {:.17g} {:.17g} {:.17g} {} {}\n", type_symbol[(int) fr.type[k]],
                 fr.x[3 * k], fr.x[3 * k + 1], fr.x[3 * k + 2], (long long) fr.tag[k],
                 (int) fr.type[k]).c_str(), fp);
  }
  fclose(fp);
}
