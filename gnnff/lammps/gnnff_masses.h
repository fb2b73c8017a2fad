/* Standard atomic masses (amu) by atomic number, the table ASE uses (ase.data.atomic_masses,
   IUPAC 2016; the mass number of the most stable isotope where there is no standard weight).
   Generated from ASE; tests/test_lammps_setup_checks.py checks it still equals ASE's. The
   symbols are gnnff_radii::SYMBOL. Part of gnnff (GPL-2.0-or-later). */

#ifndef LMP_GNNFF_MASSES_H
#define LMP_GNNFF_MASSES_H

#include "gnnff_radii.h"

#include <cmath>
#include <cstring>

namespace LAMMPS_NS {
namespace gnnff_masses {

static const double MASS[gnnff_radii::NELEM] = {
    1, 1.008, 4.0026, 6.94, 9.01218, 10.81, 12.011, 14.007,
    15.999, 18.9984, 20.1797, 22.9898, 24.305, 26.9815, 28.085, 30.9738,
    32.06, 35.45, 39.948, 39.0983, 40.078, 44.9559, 47.867, 50.9415,
    51.9961, 54.938, 55.845, 58.9332, 58.6934, 63.546, 65.38, 69.723,
    72.63, 74.9216, 78.971, 79.904, 83.798, 85.4678, 87.62, 88.9058,
    91.224, 92.9064, 95.95, 97.9072, 101.07, 102.906, 106.42, 107.868,
    112.414, 114.818, 118.71, 121.76, 127.6, 126.904, 131.293, 132.905,
    137.327, 138.905, 140.116, 140.908, 144.242, 144.913, 150.36, 151.964,
    157.25, 158.925, 162.5, 164.93, 167.259, 168.934, 173.054, 174.967,
    178.49, 180.948, 183.84, 186.207, 190.23, 192.217, 195.084, 196.967,
    200.592, 204.38, 207.2, 208.98, 208.982, 209.987, 222.018, 223.02,
    226.025, 227.028, 232.038, 231.036, 238.029, 237.048, 244.064, 243.061,
    247.07, 247.07, 251.08, 252.083, 257.095, 258.098, 259.101, 262.11,
    267.122, 268.126, 271.134, 270.133, 269.134, 278.156, 281.165, 281.166,
    285.177, 286.182, 289.19, 289.194, 293.204, 293.208, 294.214,
};

// standard atomic mass (amu) of an element symbol, or a negative value when unknown
inline double element_mass(const char *symbol)
{
  for (int z = 1; z < gnnff_radii::NELEM; z++)
    if (strcmp(gnnff_radii::SYMBOL[z], symbol) == 0) return MASS[z];
  return -1.0;
}

// symbol of the element whose standard mass is nearest to `mass` (amu)
inline const char *nearest_element(double mass)
{
  int best = 1;
  for (int z = 2; z < gnnff_radii::NELEM; z++)
    if (std::fabs(MASS[z] - mass) < std::fabs(MASS[best] - mass)) best = z;
  return gnnff_radii::SYMBOL[best];
}

}    // namespace gnnff_masses
}    // namespace LAMMPS_NS

#endif
