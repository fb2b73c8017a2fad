/* fix gnnff/stability: native MD stability checks of pair_style gnnff, recorded as LAMMPS runs.
   Part of gnnff (GPL-2.0-or-later). Syntax and record format: fix_gnnff_stability.cpp. */

#ifndef LMP_FIX_GNNFF_STABILITY_H
#define LMP_FIX_GNNFF_STABILITY_H

#include "fix.h"

#include <cstdio>
#include <deque>
#include <map>
#include <string>
#include <vector>

namespace LAMMPS_NS {

class PairGnnff;

enum { STOP_SOFT, STOP_CONTINUE, STOP_ERROR, STOP_NO };    // fix gnnff/stability `stop`

// One gathered configuration (rank 0): atoms sorted by ID, positions relative to boxlo.
struct GnnffFrame {
  bigint step = 0;
  double time_ps = 0.0, temperature = 0.0;
  double cell[9] = {0};    // rows a, b, c (A), LAMMPS lower-triangular convention
  int pbc[3] = {1, 1, 1};
  std::vector<double> tag, type, x;    // [n], [n], [3n]
};

class FixGnnffStability : public Fix {
 public:
  FixGnnffStability(class LAMMPS *, int, char **);
  ~FixGnnffStability() override;
  int setmask() override;
  void init() override;
  void setup(int) override;
  void end_of_step() override;
  void post_run() override;

 private:
  // settings
  std::string record_path, frames_path, failing_path, label, ensemble_opt;
  int keep, stopmode;
  bool append, do_finite, do_temp, do_contact, fallback_initial;
  double factor, tmax_given, tmin, tfactor, target_given, fmax_limit, drift_limit;
  std::map<std::string, double> refmin_given;

  // state
  PairGnnff *pair;
  FILE *rec, *frames;
  bigint last_checked, run_start, run_last;
  bool failed, e0_set, run_is_nve;
  double target, run_initial, e0;    // target at the last check; this run's first positive T
  std::string target_source;    // where the target came from: given, thermostat, run_initial
  double monitor_s;    // wall time spent in the checks since the last run ended (s)
  std::string ensemble;
  std::vector<std::string> type_symbol;    // index: type 1..ntypes ("X" for NULL types)
  std::vector<std::pair<long, long>> pairs;    // model species pairs present, a <= b
  std::vector<std::string> pair_keys;
  std::map<std::string, double> threshold;
  std::map<std::string, std::string> threshold_source;
  std::deque<GnnffFrame> ring;

  void check(bool setup);
  void write_start_record(double thermostat_now);
  void check_now(bool setup);
  double elapsed_ps() const;
  void resolve_thresholds(const std::vector<double> &dmin);
  void detect_thermostat(double &target_now, std::string &ens, bool setup) const;
  void write_line(FILE *fp, const std::string &line);
  bool gather_frame(GnnffFrame &fr);
  void write_frame_binary(const GnnffFrame &fr);
  void write_failing(const std::string &criterion, const std::string &pairkey, double value,
                     double thresh, double tag_i, double tag_j);
};

}    // namespace LAMMPS_NS

#endif
