// Keeps faceadapt_learner a real library while its sources land.
namespace faceadapt::learner {}
