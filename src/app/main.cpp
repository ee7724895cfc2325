// feuilled: the Feuille control plane. Everything lives in feuille_core.
#include "app/application.hpp"

int main(int argc, char** argv) { return feuille::app::main_entry(argc, argv); }
