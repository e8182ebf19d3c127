# Tests of the face stage (FaceAligner, FaceStage, tracker, `faceadapt detect`).
add_executable(test_face_aligner test_face_aligner.cpp)
target_link_libraries(test_face_aligner PRIVATE faceadapt_ingest faceadapt_test_support GTest::gtest_main)
gtest_discover_tests(test_face_aligner DISCOVERY_TIMEOUT 120)

add_executable(test_face_stage test_face_stage.cpp)
# VideoCapture reads the walkers video; the project's OpenCV_LIBS lists no videoio.
target_link_libraries(test_face_stage PRIVATE faceadapt_ingest faceadapt_test_support GTest::gtest_main opencv_videoio)
gtest_discover_tests(test_face_stage DISCOVERY_TIMEOUT 120)

add_executable(test_face_detect test_face_detect.cpp)
target_link_libraries(test_face_detect PRIVATE faceadapt_ingest faceadapt_test_support GTest::gtest_main)
if(TARGET faceadapt)
  add_dependencies(test_face_detect faceadapt)  # the DetectCommand tests run the CLI
endif()
gtest_discover_tests(test_face_detect DISCOVERY_TIMEOUT 120)

# RegionHog is private to ingest: its header comes from ingest/src, dlib is linked here too.
add_executable(test_region_hog test_region_hog.cpp)
target_include_directories(test_region_hog PRIVATE ${PROJECT_SOURCE_DIR}/ingest/src)
target_link_libraries(test_region_hog PRIVATE faceadapt_ingest faceadapt_test_support dlib::dlib GTest::gtest_main opencv_videoio)
gtest_discover_tests(test_region_hog DISCOVERY_TIMEOUT 120)

add_executable(test_image_file test_image_file.cpp)
target_link_libraries(test_image_file PRIVATE faceadapt_ingest faceadapt_test_support GTest::gtest_main)
gtest_discover_tests(test_image_file DISCOVERY_TIMEOUT 120)
