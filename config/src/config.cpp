// Placeholder: the parser lands with the foundation issue.
#include "faceadapt/config/config.hpp"
