/* AOTInductor model packages (.pt2) for pair_style gnnff. Part of gnnff (GPL-2.0-or-later). */

#include "gnnff_package.h"

#include "json.h"

#include <caffe2/serialize/inline_container.h>
#include <torch/headeronly/version.h>

#include <stdexcept>

namespace gnnff_package {

bool is_package(const std::string &path)
{
  return path.size() > 4 && path.compare(path.size() - 4, 4, ".pt2") == 0;
}

std::string torch_release()
{
  return std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) + "." +
      std::to_string(TORCH_VERSION_PATCH);
}

std::string read_extra(const std::string &path, const std::string &name)
{
  caffe2::serialize::PyTorchStreamReader reader(path);
  const std::string record = "extra/" + name;
  if (!reader.hasRecord(record))
    throw std::runtime_error("the package has no " + record + " (not written by gnnff export)");
  auto [data, size] = reader.getRecord(record);
  return std::string(static_cast<const char *>(data.get()), size);
}

std::string check_info(const std::string &path, const std::string &info_text)
{
  LAMMPS_NS::json info;
  try {
    info = LAMMPS_NS::json::parse(info_text);
  } catch (const std::exception &) {
    return "'" + path + "' has a malformed aoti.json; re-export it with `gnnff export`";
  }
  const std::string built = info.value("torch_version", std::string("unknown"));
  const std::string device = info.value("device", std::string("unknown"));
  const std::string dtype = info.value("dtype", std::string("float64"));
  const std::string redo = "`gnnff export CHECKPOINT --format aoti --dtype " + dtype +
      " --out model.pt2` (or use the TorchScript .pt file)";
  if (built != torch_release())
    return "'" + path + "' was compiled for torch " + built + ", but this plugin runs torch " +
        torch_release() +
        ": AOTInductor packages run only on the torch release that built them. Re-export it "
        "with the torch of this LAMMPS plugin: " +
        redo;
  if (device != "cpu")
    return "'" + path + "' was compiled for device '" + device +
        "', but pair_style gnnff runs models on the CPU: re-export it for cpu with " + redo;
  return "";
}

void read_bounds(const std::string &info_text, long &max_atoms, long &max_edges)
{
  LAMMPS_NS::json info = LAMMPS_NS::json::parse(info_text);
  auto bound = [&](const char *key) -> long {
    return info.contains(key) && info[key].is_number_integer() ? info[key].get<long>() : -1L;
  };
  max_atoms = bound("max_atoms");
  max_edges = bound("max_edges");
}

}    // namespace gnnff_package
