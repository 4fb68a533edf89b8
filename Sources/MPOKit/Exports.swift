@_exported import CShim
