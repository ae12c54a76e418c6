/* xxHash's implementation from its header, for machines with xxhash.h but no libxxhash. */
#define XXH_STATIC_LINKING_ONLY
#define XXH_IMPLEMENTATION
#include <xxhash.h>
