"""Deprecated location of :mod:`gnnff.lammps.mpi_hook`, kept for one release: ``.pth`` files
written by gnnff < 0.2 import ``gnnff._mpi_hook`` at interpreter start-up. ``make setup``
rewrites that file to import the new module."""

from gnnff.lammps.mpi_hook import install, preload_libmpi, uninstall, write_pth

__all__ = ["install", "preload_libmpi", "uninstall", "write_pth"]
