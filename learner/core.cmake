target_sources(faceadapt_learner PRIVATE src/placeholder.cpp)
