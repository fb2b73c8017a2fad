/* fix gnnff/stability: the checks themselves (one call per check step) and the records of
   each run's start and of each check (syntax and criteria: fix_gnnff_stability.cpp; record
   format: gnnff/lammps/records.py). In LAMMPS this fix is the one judge of its criteria: each
   check records every judged criterion's value and the verdict, and `gnnff lammps run` reads
   them (gnnff/lammps/fix_verdict.py) without judging again. The rules are those of
   gnnff/stability/criteria.py, which judges ASE runs (same thresholds, same order);
   known-answer tests pin both (tests/test_lammps_live_target.py, test_lammps_stability.py).
   Part of gnnff (GPL-2.0-or-later). */

#include "fix_gnnff_stability.h"

#include "atom.h"
#include "comm.h"
#include "compute.h"
#include "error.h"
#include "force.h"
#include "json.h"
#include "modify.h"
#include "pair_gnnff.h"
#include "timer.h"
#include "update.h"

#include <algorithm>
#include <cmath>

using namespace LAMMPS_NS;

/* The `start` record: the run's setup, and which criteria the fix judges in it with which
   settings. The fix owns the verdict of these criteria; `gnnff lammps run` only reads it
   (gnnff/lammps/fix_verdict.py), so a criterion listed here is never judged a second time. */
void FixGnnffStability::write_start_record(double t_now)
{
  if (comm->me != 0) return;
  json j;
  j["event"] = "start";
  j["fix"] = id;
  j["step"] = (long long) update->ntimestep;
  j["time_ps"] = elapsed_ps();
  j["dt_ps"] = update->dt;
  j["laststep"] = (long long) update->laststep;
  j["natoms"] = (long long) atom->natoms;
  j["ensemble"] = ensemble;
  j["thermostat_target"] = t_now > 0 ? json(t_now) : json(nullptr);
  j["model"] = pair->model_file();
  j["cutoff"] = pair->model_cutoff();
  j["species_by_type"] = std::vector<std::string>(type_symbol.begin() + 1, type_symbol.end());
  j["interval"] = nevery;
  j["label"] = label;
  json crit = json::array(), not_applicable = json::object();
  if (do_finite) crit.push_back("finite");
  if (do_temp) crit.push_back("temperature");
  if (do_contact) crit.push_back("close_contact");
  if (drift_limit > 0 && run_is_nve) crit.push_back("energy_conservation");
  else if (drift_limit > 0)
    not_applicable["energy_conservation"] = fmt::format("checked in NVE only (ensemble={})", ensemble);
  if (fmax_limit > 0) crit.push_back("max_force");
  j["criteria"] = crit;
  j["not_applicable"] = not_applicable;
  auto opt = [](double v) { return v > 0 ? json(v) : json(nullptr); };
  json s;
  s["tmax"] = opt(tmax_given);
  s["tmin"] = opt(tmin);
  s["tfactor"] = tfactor;
  s["target"] = opt(target_given);
  s["factor"] = factor;
  s["fallback"] = fallback_initial ? "initial" : "covalent";
  s["drift"] = opt(drift_limit);
  s["fmax"] = opt(fmax_limit);
  j["settings"] = s;
  write_line(rec, j.dump());
}

void FixGnnffStability::check(bool setup)
{
  const double t0 = MPI_Wtime();
  check_now(setup);
  monitor_s += MPI_Wtime() - t0;
}

// setup: a run's setup, checked even at the step the last run ended on (a command between the
// runs may have moved atoms or drawn new velocities)
void FixGnnffStability::check_now(bool setup)
{
  if (update->whichflag != 1) return;
  const bigint step = update->ntimestep;
  if (step == last_checked && !setup) return;
  last_checked = step;

  // PE and T through the thermo computes (LAMMPS tallies energy on the steps they request)
  modify->clearstep_compute();
  double pe = NAN;
  bool pe_known = false;
  Compute *cpe = modify->get_compute_by_id("thermo_pe");
  if (cpe && update->eflag_global == step) {
    pe = cpe->compute_scalar();
    pe_known = true;
  }
  Compute *ctemp = modify->get_compute_by_id("thermo_temp");
  const double temp = ctemp ? ctemp->compute_scalar() : NAN;
  modify->addstep_compute((step / nevery + 1) * nevery);    // the next end_of_step check

  // local sums: kinetic energy, non-finite values; max |F|
  double **x = atom->x, **v = atom->v, **f = atom->f;
  const int *mask = atom->mask, *type = atom->type;
  const int nlocal = atom->nlocal;
  double sums[2] = {0.0, pair->diag[1]}, fmax2 = 0.0;
  for (int i = 0; i < nlocal; i++) {
    if (!(mask[i] & groupbit)) continue;
    const double m = atom->rmass ? atom->rmass[i] : atom->mass[type[i]];
    const double v2 = v[i][0] * v[i][0] + v[i][1] * v[i][1] + v[i][2] * v[i][2];
    const double f2 = f[i][0] * f[i][0] + f[i][1] * f[i][1] + f[i][2] * f[i][2];
    if (!std::isfinite(x[i][0] + x[i][1] + x[i][2])) sums[1] += 1;
    if (!std::isfinite(v2)) sums[1] += 1;
    else sums[0] += m * v2;
    if (!std::isfinite(f2)) sums[1] += 1;
    else fmax2 = std::max(fmax2, f2);
  }
  double tot[2], fmax;
  MPI_Allreduce(sums, tot, 2, MPI_DOUBLE, MPI_SUM, world);
  const double lf = std::sqrt(fmax2);
  MPI_Allreduce(&lf, &fmax, 1, MPI_DOUBLE, MPI_MAX, world);
  const double ke = 0.5 * force->mvv2e * tot[0];
  const double n_nonfinite = tot[1];

  // per species pair minimum distance (MPI_MINLOC) and the IDs of that pair
  const size_t np = pairs.size();
  const long ns = (long) pair->species().size();
  struct {
    double d;
    int rank;
  } loc[64], glob[64];
  if (np > 64) error->all(FLERR, "fix gnnff/stability supports at most 64 species pairs");
  for (size_t k = 0; k < np; k++) {
    loc[k].d = std::sqrt(pair->pair_minsq[pairs[k].first * ns + pairs[k].second]);
    loc[k].rank = comm->me;
  }
  MPI_Allreduce(loc, glob, (int) np, MPI_DOUBLE_INT, MPI_MINLOC, world);
  std::vector<double> tags(2 * np, -1.0), gtags(2 * np, -1.0), dmin(np);
  for (size_t k = 0; k < np; k++) {
    dmin[k] = glob[k].d;
    if (glob[k].rank == comm->me) {
      const long pk = pairs[k].first * ns + pairs[k].second;
      tags[2 * k] = (double) pair->pair_tag_i[pk];
      tags[2 * k + 1] = (double) pair->pair_tag_j[pk];
    }
  }
  if (np) MPI_Allreduce(tags.data(), gtags.data(), (int) (2 * np), MPI_DOUBLE, MPI_MAX, world);
  if (do_contact && threshold.empty()) resolve_thresholds(dmin);

  // the checks, in the order of gnnff's Python criteria
  struct Failure {
    std::string criterion, pair;
    double value, threshold, ti, tj;
  };
  std::vector<Failure> fails;
  json values = json::object();    // each judged criterion's measured value (null: none)
  auto value_or_null = [](double v) { return std::isfinite(v) ? json(v) : json(nullptr); };
  if (do_finite) {
    double count = n_nonfinite + (pe_known && !std::isfinite(pe)) + !std::isfinite(temp);
    values["finite"] = count;
    if (count > 0) fails.push_back({"finite", "", count, 0.0, -1, -1});
  }
  // the temperature bound at this check (gnnff/stability/criteria.py Temperature, same rule)
  double tmax = tmax_given, t_live = -1;
  if (do_temp) {
    std::string ens;
    detect_thermostat(t_live, ens, setup);
    if (run_initial <= 0 && std::isfinite(temp) && temp > 1e-8) run_initial = temp;
    if (target_given > 0) {
      target = target_given;
      target_source = "given";
    } else if (t_live > 0) {
      target = t_live;
      target_source = "thermostat";
    } else if (run_initial > 0) {
      target = run_initial;
      target_source = "run_initial";
    }
    if (tmax_given <= 0 && target > 0) tmax = tfactor * target;
    values["temperature"] = value_or_null(temp);
    if (!std::isfinite(temp)) fails.push_back({"temperature", "", temp, tmax, -1, -1});
    else if (tmax > 0 && temp > tmax) fails.push_back({"temperature", "", temp, tmax, -1, -1});
    else if (tmin > 0 && temp < tmin) fails.push_back({"temperature", "", temp, tmin, -1, -1});
  }
  long worst = -1;    // the pair closest to (or furthest below) its threshold
  if (do_contact) {
    double worst_ratio = INFINITY;
    for (size_t k = 0; k < np; k++) {
      if (!(dmin[k] < pair->model_cutoff())) continue;    // no such pair within the cutoff
      const double r = dmin[k] / threshold[pair_keys[k]];
      if (r < worst_ratio) {
        worst_ratio = r;
        worst = (long) k;
      }
    }
    values["close_contact"] = worst >= 0 ? json(dmin[worst]) : json(nullptr);
    if (worst >= 0 && worst_ratio < 1.0)
      fails.push_back({"close_contact", pair_keys[worst], dmin[worst],
                       threshold[pair_keys[worst]], gtags[2 * worst], gtags[2 * worst + 1]});
  }
  double drift = NAN;
  if (drift_limit > 0 && run_is_nve && pe_known && atom->natoms > 0) {
    const double etot = pe + ke;
    if (!e0_set && std::isfinite(etot)) {
      e0 = etot;
      e0_set = true;
    }
    drift = std::fabs(etot - e0) / (double) atom->natoms;
    if (!std::isfinite(drift) || drift > drift_limit)
      fails.push_back({"energy_conservation", "", drift, drift_limit, -1, -1});
  }
  if (drift_limit > 0 && run_is_nve) values["energy_conservation"] = value_or_null(drift);
  if (fmax_limit > 0) {
    values["max_force"] = value_or_null(fmax);
    if (fmax > fmax_limit) fails.push_back({"max_force", "", fmax, fmax_limit, -1, -1});
  }

  // configuration: kept for the failing frames and/or written for the driver
  const bool first_failure = !fails.empty() && !failed;
  const bool want_frame = !frames_path.empty() || (!failing_path.empty() && !failed);
  long frame_index = -1;
  if (want_frame) {
    GnnffFrame fr;
    fr.temperature = temp;
    if (gather_frame(fr) && comm->me == 0) {
      if (frames) {
        write_frame_binary(fr);
        frame_index = 1;
      }
      if (!failing_path.empty() && !failed) {
        ring.push_back(std::move(fr));
        while ((int) ring.size() > keep + 1) ring.pop_front();
      }
    }
  }

  if (comm->me == 0) {
    json j;
    j["event"] = "check";
    j["step"] = (long long) step;
    j["time_ps"] = elapsed_ps();
    j["temperature"] = temp;
    j["pe"] = pe_known ? json(pe) : json(nullptr);
    j["ke"] = ke;
    j["fmax"] = fmax;
    j["nonfinite"] = n_nonfinite;
    j["t_max"] = tmax > 0 ? json(tmax) : json(nullptr);
    j["target_temperature"] = target > 0 ? json(target) : json(nullptr);
    j["thermostat_target"] = t_live > 0 ? json(t_live) : json(nullptr);
    j["setup"] = setup;
    j["drift_per_atom"] = std::isfinite(drift) ? json(drift) : json(nullptr);
    j["target_source"] = target_source.empty() ? json(nullptr) : json(target_source);
    j["e0"] = e0_set ? json(e0) : json(nullptr);
    j["values"] = values;
    j["contact_pair"] = worst >= 0 ? json(pair_keys[worst]) : json(nullptr);
    json md = json::object(), ids = json::object();
    for (size_t k = 0; k < np; k++) {
      const bool found = dmin[k] < pair->model_cutoff();
      md[pair_keys[k]] = found ? json(dmin[k]) : json(nullptr);
      if (found) ids[pair_keys[k]] = {(long long) gtags[2 * k], (long long) gtags[2 * k + 1]};
    }
    j["min_distance"] = md;
    j["closest_ids"] = ids;
    j["frame"] = frame_index >= 0;
    j["ok"] = fails.empty();
    json fl = json::array();
    for (auto &e : fails) {
      json o;
      o["criterion"] = e.criterion;
      o["value"] = e.value;
      o["threshold"] = e.threshold;
      if (!e.pair.empty()) {
        o["pair"] = e.pair;
        o["ids"] = {(long long) e.ti, (long long) e.tj};
      }
      fl.push_back(o);
    }
    j["failed"] = fl;
    write_line(rec, j.dump());
  }
  if (!first_failure) return;
  failed = true;
  const Failure &e = fails.front();
  if (!failing_path.empty() && comm->me == 0)
    write_failing(e.criterion, e.pair, e.value, e.threshold, e.ti, e.tj);
  ring.clear();
  const std::string msg = fmt::format(
      "fix {} gnnff/stability: {} check failed at step {} (value {}, threshold {}{}{})", id,
      e.criterion, step, e.value, e.threshold, e.pair.empty() ? "" : ", pair ", e.pair);
  if (stopmode == STOP_ERROR) error->all(FLERR, msg);
  if (comm->me == 0) error->warning(FLERR, msg);
  if (stopmode == STOP_SOFT || stopmode == STOP_CONTINUE) timer->force_timeout();
}
