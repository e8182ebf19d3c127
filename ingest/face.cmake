target_sources(faceadapt_ingest PRIVATE src/placeholder.cpp)
