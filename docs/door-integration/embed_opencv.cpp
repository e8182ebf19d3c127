// Embed one aligned chip with model.onnx through OpenCV DNN (C++).
// build: g++ -std=c++17 -O2 embed_opencv.cpp $(pkg-config --cflags --libs opencv4) -o embed_opencv
// usage: ./embed_opencv MODEL.onnx CHIP.png   -> the 128 values of the raw embedding, one line
#include <cstdio>
#include <opencv2/dnn.hpp>
#include <opencv2/imgcodecs.hpp>

int main(int argc, char** argv) {
    if (argc != 3) return 2;
    cv::dnn::Net net = cv::dnn::readNetFromONNX(argv[1]);
    cv::Mat bgr = cv::imread(argv[2], cv::IMREAD_COLOR);  // aligned 150x150 chip
    // RGB (swapRB), values 0..255 as float, NCHW; the graph normalises.
    cv::Mat blob = cv::dnn::blobFromImage(bgr, 1.0, cv::Size(150, 150), cv::Scalar(), /*swapRB=*/true, false, CV_32F);
    net.setInput(blob, "input");
    cv::Mat e = net.forward("embedding");  // [1,128]
    for (int k = 0; k < 128; ++k) std::printf("%s%.6f", k ? " " : "", e.at<float>(0, k));
    std::printf("\n");
    return 0;
}
