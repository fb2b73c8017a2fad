/* AOTInductor model packages (.pt2) for pair_style gnnff: reading their extra files and
   checking that they can run here. Part of gnnff (GPL-2.0-or-later).
   The package layout and its aoti.json: gnnff/potentials/aoti.py, docs/model_contract.md. */

#ifndef LMP_GNNFF_PACKAGE_H
#define LMP_GNNFF_PACKAGE_H

#include <string>

namespace gnnff_package {

// padding the host appends to every call (gnnff.potentials.aoti.PAD_ATOMS, PAD_LENGTH)
constexpr int PAD_ATOMS = 2;
constexpr double PAD_LENGTH = 1.5;

// true for a path named like a package (*.pt2): the format is chosen by the extension
bool is_package(const std::string &path);

// the torch release this plugin was compiled against, "major.minor.patch"
std::string torch_release();

// the text of extra/<name> in the package; throws std::runtime_error when it is not there
std::string read_extra(const std::string &path, const std::string &name);

// "" when the package (its aoti.json text) can run in this plugin (CPU, this torch release),
// otherwise the reason, naming both sides and the export command to rerun
std::string check_info(const std::string &path, const std::string &info_text);

// the package's max_atoms and max_edges (-1 where it has none)
void read_bounds(const std::string &info_text, long &max_atoms, long &max_edges);

}    // namespace gnnff_package

#endif
