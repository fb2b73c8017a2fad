/* fix ID group gnnff/stability N keyword value ...

   Every N steps of a run, and at the setup (step 0) of every run, evaluates gnnff's stability
   checks natively (MPI-reduced) and appends one JSON line per check to a record file:
     finite         positions, velocities, forces, model outputs, PE and T are finite
     temperature    T (thermo_temp) <= tmax, or tfactor x the target AT THIS CHECK: `target`
                    if given; else the thermostat's current target (t_target of the first
                    fix that exposes one, read at every check: ramps and a new stage's fix
                    are followed); else (NVE) this run's own initial temperature (the first
                    positive T checked since the run's setup); T >= tmin if given
     close_contact  every model species pair (pairs closer than the model cutoff) stays >=
                    factor x its training-set minimum distance stored in the model (`refmin`
                    overrides; pairs without one: factor x sum of covalent radii, or x their
                    distance at the first check with `fallback initial`)
     energy_conservation  NVE runs: |E_tot - E_tot(first check)| / N <= drift (eV/atom)
     max_force      max |F| <= fmax (eV/A), only when fmax is given
   The setup of every run is checked even at a step already checked (`displace_atoms`, `set`,
   `velocity`, ... may have changed the configuration since). (`run ... pre no` has no
   setup, so its first step is checked only if it is a multiple of N.)
   At the first failed check it writes the failing configuration and the `keep` checked
   configurations before it as extended XYZ (`failing`), and stops the run (`stop`).
   The fix is the one judge of these criteria: each check's record holds every judged
   criterion's value and the failures, which `gnnff lammps run` reports as they are.

   keywords (default):
     file PATH            JSON-lines record (gnnff_stability.jsonl)
     frames PATH|none     binary positions at every check, read by `gnnff lammps run` (none)
     failing PATH|none    failing frames, extended XYZ (failing.extxyz)
     keep K               configurations kept before the failing one (5)
     append yes|no        append to existing files instead of truncating them (no)
     finite|temperature|contact yes|no    enable a check (yes)
     factor F             close-contact factor (0.75)
     reference model|none use the model's stored training-set distances (model)
     refmin A-B D         training-set minimum distance of a pair (A), repeatable
     fallback covalent|initial   pairs without a reference distance (covalent)
     tmax T / tmin T / tfactor F / target T    temperature bounds (none / none / 3 / none);
                          a given target replaces the thermostat's and the run's own
     drift E|no           NVE energy drift per atom, eV (0.05)
     fmax F|no            maximum force, eV/A (no)
     ensemble auto|nve|nvt|npt   auto: nvt/npt if a thermostat/barostat fix exists (auto)
     stop soft|continue|error|no  soft: end this run and skip later ones (like fix halt error
                          soft); continue: end this run only; error: LAMMPS error; no: record
     label TEXT           source label written into the failing frames (lammps)
   Part of gnnff (GPL-2.0-or-later). */

#include "fix_gnnff_stability.h"

#include "atom.h"
#include "comm.h"
#include "compute.h"
#include "domain.h"
#include "error.h"
#include "force.h"
#include "gnnff_radii.h"
#include "json.h"
#include "modify.h"
#include "pair.h"
#include "pair_gnnff.h"
#include "timer.h"
#include "update.h"
#include "utils.h"

#include <algorithm>
#include <cmath>
#include <cstring>

using namespace LAMMPS_NS;
using namespace FixConst;

static std::string pair_key(const std::string &a, const std::string &b)
{
  return a < b ? a + "-" + b : b + "-" + a;
}

static bool yesno(LAMMPS *lmp, const char *kw, const char *v)
{
  return utils::logical(FLERR, v, false, lmp) == 1;
}

FixGnnffStability::FixGnnffStability(LAMMPS *lmp, int narg, char **arg) :
    Fix(lmp, narg, arg), record_path("gnnff_stability.jsonl"), failing_path("failing.extxyz"),
    label("lammps"), ensemble_opt("auto"), keep(5), stopmode(STOP_SOFT), append(false),
    do_finite(true), do_temp(true), do_contact(true), fallback_initial(false), factor(0.75),
    tmax_given(-1), tmin(-1), tfactor(3.0), target_given(-1), fmax_limit(-1), drift_limit(0.05),
    pair(nullptr), rec(nullptr), frames(nullptr), last_checked(-1), run_start(0), run_last(0),
    failed(false), e0_set(false), run_is_nve(false), target(-1), run_initial(-1), e0(0),
    monitor_s(0.0)
{
  if (narg < 4)
    error->all(FLERR, "fix gnnff/stability needs N: fix ID all gnnff/stability 10 [keyword value]");
  nevery = utils::inumeric(FLERR, arg[3], false, lmp);
  if (nevery < 1) error->all(FLERR, "fix gnnff/stability: N must be a positive number of steps");
  bool use_model_reference = true;
  for (int i = 4; i < narg; i += 2) {
    const std::string kw = arg[i];
    if (i + 1 >= narg) error->all(FLERR, "fix gnnff/stability: keyword {} needs a value", kw);
    const char *v = arg[i + 1];
    auto num = [&]() { return utils::numeric(FLERR, v, false, lmp); };
    auto off = [&]() { return strcmp(v, "no") == 0 || strcmp(v, "none") == 0; };
    if (kw == "file") record_path = v;
    else if (kw == "frames") frames_path = off() ? "" : v;
    else if (kw == "failing") failing_path = off() ? "" : v;
    else if (kw == "keep") keep = utils::inumeric(FLERR, v, false, lmp);
    else if (kw == "append") append = yesno(lmp, arg[i], v);
    else if (kw == "finite") do_finite = yesno(lmp, arg[i], v);
    else if (kw == "temperature") do_temp = yesno(lmp, arg[i], v);
    else if (kw == "contact") do_contact = yesno(lmp, arg[i], v);
    else if (kw == "factor") factor = num();
    else if (kw == "reference") {
      if (strcmp(v, "model") != 0 && strcmp(v, "none") != 0)
        error->all(FLERR, "fix gnnff/stability: reference must be model or none, got {}", v);
      use_model_reference = strcmp(v, "model") == 0;
    } else if (kw == "refmin") {
      if (i + 2 >= narg) error->all(FLERR, "fix gnnff/stability: refmin needs a pair and a distance, e.g. refmin O-Si 1.45");
      std::string p = v;
      auto dash = p.find('-');
      if (dash == std::string::npos)
        error->all(FLERR, "fix gnnff/stability: refmin pair '{}' must look like O-Si", p);
      refmin_given[pair_key(p.substr(0, dash), p.substr(dash + 1))] =
          utils::numeric(FLERR, arg[i + 2], false, lmp);
      i++;
    } else if (kw == "fallback") {
      if (strcmp(v, "covalent") != 0 && strcmp(v, "initial") != 0)
        error->all(FLERR, "fix gnnff/stability: fallback must be covalent or initial, got {}", v);
      fallback_initial = strcmp(v, "initial") == 0;
    } else if (kw == "tmax") tmax_given = off() ? -1 : num();
    else if (kw == "tmin") tmin = off() ? -1 : num();
    else if (kw == "tfactor") tfactor = num();
    else if (kw == "target") target_given = off() ? -1 : num();
    else if (kw == "drift") drift_limit = off() ? -1 : num();
    else if (kw == "fmax") fmax_limit = off() ? -1 : num();
    else if (kw == "ensemble") {
      ensemble_opt = v;
      if (ensemble_opt != "auto" && ensemble_opt != "nve" && ensemble_opt != "nvt" &&
          ensemble_opt != "npt")
        error->all(FLERR, "fix gnnff/stability: ensemble must be auto, nve, nvt or npt");
    } else if (kw == "stop") {
      if (strcmp(v, "soft") == 0) stopmode = STOP_SOFT;
      else if (strcmp(v, "continue") == 0) stopmode = STOP_CONTINUE;
      else if (strcmp(v, "error") == 0) stopmode = STOP_ERROR;
      else if (strcmp(v, "no") == 0) stopmode = STOP_NO;
      else error->all(FLERR, "fix gnnff/stability: stop must be soft, continue, error or no");
    } else if (kw == "label") label = v;
    else
      error->all(FLERR,
                 "fix gnnff/stability: unknown keyword '{}'; valid: file frames failing keep "
                 "append finite temperature contact factor reference refmin fallback tmax tmin "
                 "tfactor target drift fmax ensemble stop label",
                 kw);
  }
  if (!(factor > 0) || keep < 0 || !(tfactor > 0))
    error->all(FLERR, "fix gnnff/stability: factor and tfactor must be > 0 and keep >= 0");
  if (!use_model_reference) refmin_given["__none__"] = 0.0;    // marker: ignore the model's
  if (comm->me == 0) {
    rec = fopen(record_path.c_str(), append ? "a" : "w");
    if (!rec)
      error->one(FLERR, "fix gnnff/stability: cannot open record file {}: {}", record_path,
                 utils::getsyserror());
    if (!frames_path.empty()) {
      frames = fopen(frames_path.c_str(), append ? "ab" : "wb");
      if (!frames)
        error->one(FLERR, "fix gnnff/stability: cannot open frames file {}: {}", frames_path,
                   utils::getsyserror());
    }
  }
}

FixGnnffStability::~FixGnnffStability()
{
  if (rec) fclose(rec);
  if (frames) fclose(frames);
}

int FixGnnffStability::setmask()
{
  return END_OF_STEP | POST_RUN;
}

void FixGnnffStability::init()
{
  Pair *p = force->pair_match("gnnff", 1, 0);
  if (!p) p = force->pair_match("gnnff", 0, 0);
  pair = dynamic_cast<PairGnnff *>(p);
  if (!pair)
    error->all(FLERR, "fix gnnff/stability needs pair_style gnnff (alone or as one sub-style of "
                      "pair_style hybrid, hybrid/overlay or hybrid/scaled)");
  const auto &sp = pair->species();
  type_symbol.assign(atom->ntypes + 1, "X");
  std::vector<bool> present(sp.size(), false);
  for (int t = 1; t <= atom->ntypes; t++) {
    long s = pair->type_species(t);
    if (s >= 0) {
      type_symbol[t] = sp[s];
      present[s] = true;
    }
  }
  pairs.clear();
  pair_keys.clear();
  for (long a = 0; a < (long) sp.size(); a++)
    for (long b = a; b < (long) sp.size(); b++)
      if (present[a] && present[b]) {
        pairs.emplace_back(a, b);
        pair_keys.push_back(pair_key(sp[a], sp[b]));
      }
}

double FixGnnffStability::elapsed_ps() const
{
  return update->atime + (double) (update->ntimestep - update->atimestep) * update->dt;
}

/* The thermostat's current target (K; -1 without one): t_target of the first fix exposing it.
   At a run's setup, a fix after this one in the fix list has not run its own setup yet (e.g.
   the `fix nvt` of a second stage): its t_start is taken where it exposes one (fix nvt/npt:
   a ramp starts there), as its t_target is not yet this run's. */
void FixGnnffStability::detect_thermostat(double &target_now, std::string &ens,
                                          bool setup) const
{
  target_now = -1;
  bool baro = false, after_me = false;
  for (Fix *f : modify->get_fix_list()) {
    if (f == this) {
      after_me = true;
      continue;
    }
    const std::string style = f->style;
    if (style.find("npt") != std::string::npos || style.find("nph") != std::string::npos ||
        style.find("press") != std::string::npos)
      baro = true;
    if (target_now >= 0) continue;
    int dim = -1;
    void *ptr = f->extract("t_target", dim);
    if (!ptr || dim != 0) continue;
    target_now = *(double *) ptr;
    if (setup && after_me) {
      int dim0 = -1;
      void *start = f->extract("t_start", dim0);
      if (start && dim0 == 0) target_now = *(double *) start;
    }
    if (!std::isfinite(target_now)) target_now = -1;
  }
  ens = baro ? "npt" : (target_now > 0 ? "nvt" : "nve");
}

void FixGnnffStability::write_line(FILE *fp, const std::string &line)
{
  if (comm->me != 0 || !fp) return;
  fputs(line.c_str(), fp);
  fputc('\n', fp);
  fflush(fp);
}

void FixGnnffStability::setup(int)
{
  if (update->whichflag != 1) return;
  run_start = update->ntimestep;
  run_last = update->laststep;
  double t_now;
  std::string ens;
  detect_thermostat(t_now, ens, true);
  run_initial = -1;    // NVE: this run's own initial temperature is its target
  e0_set = false;      // and its own E_tot at the setup is the energy-drift reference
  if (ensemble.empty()) {
    ensemble = ensemble_opt == "auto" ? ens : ensemble_opt;
    run_is_nve = ensemble == "nve";
  }
  write_start_record(t_now);
  check(true);
}

void FixGnnffStability::end_of_step()
{
  check(false);
}

void FixGnnffStability::post_run()
{
  if (update->whichflag != 1) return;
  double spent = 0.0;
  MPI_Allreduce(&monitor_s, &spent, 1, MPI_DOUBLE, MPI_MAX, world);
  monitor_s = 0.0;
  if (comm->me == 0) {
    json j;
    j["event"] = "end";
    j["step"] = (long long) update->ntimestep;
    j["time_ps"] = elapsed_ps();
    // a `run ... pre no` has no setup: the run's own first and last step come from update
    j["start"] = (long long) update->firststep;
    j["laststep"] = (long long) update->laststep;
    j["dt_ps"] = update->dt;
    j["halted"] = update->ntimestep < update->laststep;
    j["monitor_s"] = spent;    // time in this fix's checks during the run (slowest rank)
    write_line(rec, j.dump());
  }
  if (failed && stopmode == STOP_CONTINUE) timer->reset_timeout();
}

void FixGnnffStability::resolve_thresholds(const std::vector<double> &dmin)
{
  const bool no_model = refmin_given.count("__none__") > 0;
  const auto &model_ref = pair->reference_min();
  for (size_t k = 0; k < pair_keys.size(); k++) {
    const std::string &key = pair_keys[k];
    if (threshold.count(key)) continue;
    double base = -1;
    std::string src;
    if (refmin_given.count(key)) {
      base = refmin_given.at(key);
      src = "reference";
    } else if (!no_model && model_ref.count(key)) {
      base = model_ref.at(key);
      src = "reference";
    } else if (fallback_initial && dmin[k] < pair->model_cutoff()) {
      base = dmin[k];
      src = "initial";
    } else {
      const auto &sp = pair->species();
      double ra = gnnff_radii::covalent_radius(sp[pairs[k].first].c_str());
      double rb = gnnff_radii::covalent_radius(sp[pairs[k].second].c_str());
      if (ra < 0 || rb < 0)
        error->all(FLERR, "fix gnnff/stability: no covalent radius for pair {}; give its "
                          "training-set minimum distance with refmin {} D", key, key);
      base = ra + rb;
      src = "covalent";
    }
    threshold[key] = factor * base;
    threshold_source[key] = src;
  }
  if (comm->me == 0) {
    json j;
    j["event"] = "thresholds";
    j["step"] = (long long) update->ntimestep;
    j["factor"] = factor;
    j["pair_min_distance"] = threshold;
    j["pair_source"] = threshold_source;
    j["reference_source"] = pair->reference_source();
    write_line(rec, j.dump());
  }
}
